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
        /// <summary>
        /// What the NPC may do in this reply: each action it takes arrives as
        /// <see cref="SpeakReply.OnAction"/>, after its speech, with arguments valid
        /// against the action's schema.
        /// </summary>
        public List<ActionSpec> Actions;
        /// <summary>"auto" (default), "none", "required" or the name of one action.</summary>
        public string ActionChoice;
        /// <summary>A JSON Schema: the whole reply is one JSON value of it (Final.Text).</summary>
        public string ResponseJsonSchema;

        /// <summary>An action for <see cref="Actions"/>: a name, what it does, and the
        /// JSON Schema of its arguments (an object schema as JSON text; null: none).</summary>
        public static ActionSpec Action(string name, string description, string parametersJsonSchema = null)
        {
            return new ActionSpec { Name = name, Description = description ?? "", ParametersJsonSchema = parametersJsonSchema ?? "" };
        }

        internal static List<ActionSpec> ActionsOf(SpeakOptions options)
        {
            return options != null && options.Actions != null ? new List<ActionSpec>(options.Actions) : new List<ActionSpec>();
        }

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
