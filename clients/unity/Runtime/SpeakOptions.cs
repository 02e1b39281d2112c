using System.Collections.Generic;

namespace NpcRuntime
{
    /// <summary>
    /// How one reply is sampled, and who the player is in the prompt; null fields use the
    /// daemon's defaults (see <see cref="Sampling"/>).
    /// </summary>
    public class SpeakOptions
    {
        public int? MaxTokens;
        public double? Temperature;
        public double? TopP;
        public int? TopK;
        public double? RepetitionPenalty;
        public long? Seed;
        public List<string> Stop;
        /// <summary>The speaker name of the player's line (default "Player").</summary>
        public string SpeakerName;

        /// <summary>The Sampling message of these options; null when they set none.</summary>
        internal static Sampling SamplingOf(SpeakOptions options)
        {
            if (options == null) return null;
            var sampling = options.ToSampling();
            return sampling.ToJson().Count > 0 ? sampling : null;
        }

        internal Sampling ToSampling()
        {
            return new Sampling
            {
                MaxTokens = MaxTokens, Temperature = Temperature, TopP = TopP, TopK = TopK,
                RepetitionPenalty = RepetitionPenalty, Seed = Seed,
                Stop = Stop != null ? new List<string>(Stop) : new List<string>(),
            };
        }
    }
}
