using System.Collections.Generic;

namespace NpcRuntime
{
    /// <summary>An NPC's profile (proto NpcProfile): id, name, profile text, style, greeting, examples.</summary>
    public class NpcProfile
    {
        public string Id = "";
        public string Name = "";
        public string Profile = "";
        public string Style = "";
        public string Greeting = "";
        public List<string> Examples = new List<string>();

        internal Dictionary<string, object> ToJson()
        {
            return new Dictionary<string, object>
            {
                { "id", Id }, { "name", Name }, { "profile", Profile }, { "style", Style ?? "" },
                { "greeting", Greeting ?? "" }, { "examples", Examples ?? new List<string>() },
            };
        }

        internal static NpcProfile FromJson(Dictionary<string, object> obj)
        {
            var p = new NpcProfile
            {
                Id = obj.Str("id"), Name = obj.Str("name"), Profile = obj.Str("profile"),
                Style = obj.Str("style"), Greeting = obj.Str("greeting"),
            };
            foreach (var e in obj.List("examples")) p.Examples.Add(e as string ?? "");
            return p;
        }
    }

    /// <summary>An NPC of the running cast (proto Npc).</summary>
    public class Npc
    {
        public NpcProfile Profile;
        /// <summary>NPC_KIND_BLOCK (trained) or NPC_KIND_FUSED (registered from a profile).</summary>
        public string Kind;

        internal static Npc FromJson(Dictionary<string, object> obj)
        {
            return new Npc { Profile = NpcProfile.FromJson(obj.Obj("profile")), Kind = obj.Str("kind") };
        }
    }

    /// <summary>One turn of a session (proto Turn).</summary>
    public class Turn
    {
        public int Seq;
        /// <summary>SPEAKER_KIND_PLAYER or SPEAKER_KIND_NPC.</summary>
        public string SpeakerKind;
        public string NpcId;
        public string SpeakerName;
        public string Text;
    }

    /// <summary>A conversation (proto Session).</summary>
    public class Session
    {
        public string Id;
        /// <summary>One page of turns, oldest first.</summary>
        public List<Turn> Turns = new List<Turn>();
        /// <summary>Pass to GetSession for the next page; empty on the last page.</summary>
        public string NextPageToken = "";
        /// <summary>Turns in the whole session.</summary>
        public int TurnCount;

        internal static Session FromJson(Dictionary<string, object> obj)
        {
            var s = new Session
            {
                Id = obj.Str("id"), NextPageToken = obj.Str("next_page_token"), TurnCount = obj.Int("turn_count"),
            };
            foreach (var t in obj.List("turns"))
            {
                var turn = (Dictionary<string, object>)t;
                s.Turns.Add(new Turn
                {
                    Seq = turn.Int("seq"), SpeakerKind = turn.Str("speaker_kind"), NpcId = turn.Str("npc_id"),
                    SpeakerName = turn.Str("speaker_name"), Text = turn.Str("text"),
                });
            }
            return s;
        }
    }

    /// <summary>Sampling of one reply (proto Sampling); null fields use the daemon's defaults.</summary>
    public class SpeakOptions
    {
        public int? MaxTokens;
        public double? Temperature;
        public double? TopP;
        public int? TopK;
        public long? Seed;
        public List<string> Stop;
        /// <summary>The speaker name of the player's line (default "Player").</summary>
        public string SpeakerName;

        internal Dictionary<string, object> SamplingJson()
        {
            var d = new Dictionary<string, object>();
            if (MaxTokens.HasValue) d["max_tokens"] = MaxTokens.Value;
            if (Temperature.HasValue) d["temperature"] = Temperature.Value;
            if (TopP.HasValue) d["top_p"] = TopP.Value;
            if (TopK.HasValue) d["top_k"] = TopK.Value;
            if (Seed.HasValue) d["seed"] = Seed.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (Stop != null) d["stop"] = Stop;
            return d;
        }
    }

    /// <summary>A sentence of a reply, as it completes (for subtitles and text-to-speech).</summary>
    public class Sentence
    {
        public int Index;
        public string Text;
    }

    /// <summary>The end of a reply (proto Final).</summary>
    public class FinalReply
    {
        public string Text;
        /// <summary>FINISH_REASON_STOP, FINISH_REASON_LENGTH or FINISH_REASON_CANCELLED.</summary>
        public string FinishReason;
        public int PromptTokens;
        public int CompletionTokens;
        public double TotalSeconds;
        public bool Stored;

        internal static FinalReply FromJson(Dictionary<string, object> obj)
        {
            return new FinalReply
            {
                Text = obj.Str("text"), FinishReason = obj.Str("finish_reason"),
                PromptTokens = obj.Int("prompt_tokens"), CompletionTokens = obj.Int("completion_tokens"),
                TotalSeconds = obj.Num("total_seconds"), Stored = obj.Bool("stored"),
            };
        }
    }
}
