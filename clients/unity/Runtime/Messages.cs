// Generated from protos/npc_runtime/v1/npc_runtime.proto by scripts/gen_unity_messages.py: do not edit.
// tests/test_unity_messages.py fails when this file drifts from the proto.
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace NpcRuntime
{
    /// <summary>
    /// Sampling options; every field is optional and falls back to the default shown.
    /// </summary>
    public sealed partial class Sampling
    {
        /// <summary>
        /// Most tokens in the reply: 1 up to the server's limit (1024 unless configured;
        /// default 128).
        /// </summary>
        public long? MaxTokens = null;
        /// <summary>
        /// 0 picks the likeliest token (greedy); otherwise in (0, 5] (default 0.8).
        /// </summary>
        public double? Temperature = null;
        /// <summary>
        /// Nucleus sampling mass, in (0, 1] (default 0.95).
        /// </summary>
        public double? TopP = null;
        /// <summary>
        /// Keep only the k likeliest tokens, 0..100000; 0 turns the cut off (default 0).
        /// </summary>
        public long? TopK = null;
        /// <summary>
        /// Penalty on tokens already in the prompt or reply, in [0.5, 2] (default 1.1).
        /// </summary>
        public double? RepetitionPenalty = null;
        /// <summary>
        /// Up to 8 strings of 1-64 characters; the reply ends before the first one.
        /// </summary>
        public List<string> Stop = new List<string>();
        /// <summary>
        /// Fixes the random choices, for reproducible replies: 0..2^63-1.
        /// </summary>
        public long? Seed = null;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static Sampling FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new Sampling();
            if (obj.ContainsKey("max_tokens") && obj["max_tokens"] != null) m.MaxTokens = JsonExt.AsLong(obj["max_tokens"]);
            if (obj.ContainsKey("temperature") && obj["temperature"] != null) m.Temperature = JsonExt.AsDouble(obj["temperature"]);
            if (obj.ContainsKey("top_p") && obj["top_p"] != null) m.TopP = JsonExt.AsDouble(obj["top_p"]);
            if (obj.ContainsKey("top_k") && obj["top_k"] != null) m.TopK = JsonExt.AsLong(obj["top_k"]);
            if (obj.ContainsKey("repetition_penalty") && obj["repetition_penalty"] != null) m.RepetitionPenalty = JsonExt.AsDouble(obj["repetition_penalty"]);
            foreach (var v in JsonExt.AsList(obj.Get("stop"))) m.Stop.Add(JsonExt.AsString(v));
            if (obj.ContainsKey("seed") && obj["seed"] != null) m.Seed = JsonExt.AsLong(obj["seed"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (MaxTokens != null) d["max_tokens"] = MaxTokens.Value;
            if (Temperature != null) d["temperature"] = Temperature.Value;
            if (TopP != null) d["top_p"] = TopP.Value;
            if (TopK != null) d["top_k"] = TopK.Value;
            if (RepetitionPenalty != null) d["repetition_penalty"] = RepetitionPenalty.Value;
            if (Stop.Count > 0) d["stop"] = Stop.Select(v => (object)v).ToList();
            if (Seed != null) d["seed"] = Seed.Value.ToString(CultureInfo.InvariantCulture);
            return d;
        }
    }

    /// <summary>proto SpeakRequest.</summary>
    public sealed partial class SpeakRequest
    {
        /// <summary>
        /// The NPC that replies.
        /// </summary>
        public string NpcId = "";
        /// <summary>
        /// The conversation (scene, save slot) this line belongs to; created on first use.
        /// Several NPCs may speak in one session: each hears every stored turn. The prompt is
        /// the NPC's profile, then the session's latest turns (64 at most), then this text;
        /// when it outgrows the model's context, the oldest turns leave first and the profile
        /// never does.
        /// </summary>
        public string SessionId = "";
        /// <summary>
        /// The player's line: 1 byte up to the server's limit (default 4096 bytes of UTF-8).
        /// </summary>
        public string Text = "";
        /// <summary>
        /// How the player appears to NPCs in the prompt (default "Player"): 1-64 characters,
        /// no control characters and no ':'.
        /// </summary>
        public string SpeakerName = null;
        public Sampling Sampling = null;
        /// <summary>
        /// An id for Cancel, chosen by the client (same rules as other ids); when empty the
        /// server picks one and sends it in the Started event.
        /// </summary>
        public string RequestId = "";
        /// <summary>
        /// What the NPC may do in this reply, at most 16. After its speech the NPC writes a
        /// list of calls (at most 4), decoded under a grammar, so every Action event carries
        /// arguments valid against its spec's schema; a list cut short by its token limit (256
        /// tokens beyond max_tokens) is dropped, never sent half-made.
        /// </summary>
        public List<ActionSpec> Actions = new List<ActionSpec>();
        /// <summary>
        /// "auto" or empty (the NPC chooses, maybe none), "none" (speech only), "required" (at
        /// least one action), or the name of a declared action (at least one, all of it).
        /// </summary>
        public string ActionChoice = "";
        /// <summary>
        /// A JSON Schema (JSON text, at most 16 KiB): the whole reply is one JSON value valid
        /// against it (a quest offer, a price), streamed as Token events, complete in Final.text
        /// when the finish reason is STOP. Takes no actions and no stop strings.
        /// </summary>
        public string ResponseJsonSchema = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static SpeakRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new SpeakRequest();
            if (obj.ContainsKey("npc_id") && obj["npc_id"] != null) m.NpcId = JsonExt.AsString(obj["npc_id"]);
            if (obj.ContainsKey("session_id") && obj["session_id"] != null) m.SessionId = JsonExt.AsString(obj["session_id"]);
            if (obj.ContainsKey("text") && obj["text"] != null) m.Text = JsonExt.AsString(obj["text"]);
            if (obj.ContainsKey("speaker_name") && obj["speaker_name"] != null) m.SpeakerName = JsonExt.AsString(obj["speaker_name"]);
            if (obj.ContainsKey("sampling") && obj["sampling"] != null) m.Sampling = Sampling.FromJson(obj["sampling"] as Dictionary<string, object>);
            if (obj.ContainsKey("request_id") && obj["request_id"] != null) m.RequestId = JsonExt.AsString(obj["request_id"]);
            foreach (var v in JsonExt.AsList(obj.Get("actions"))) m.Actions.Add(ActionSpec.FromJson(v as Dictionary<string, object>));
            if (obj.ContainsKey("action_choice") && obj["action_choice"] != null) m.ActionChoice = JsonExt.AsString(obj["action_choice"]);
            if (obj.ContainsKey("response_json_schema") && obj["response_json_schema"] != null) m.ResponseJsonSchema = JsonExt.AsString(obj["response_json_schema"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(NpcId)) d["npc_id"] = NpcId;
            if (!string.IsNullOrEmpty(SessionId)) d["session_id"] = SessionId;
            if (!string.IsNullOrEmpty(Text)) d["text"] = Text;
            if (SpeakerName != null) d["speaker_name"] = SpeakerName;
            if (Sampling != null) d["sampling"] = Sampling.ToJson();
            if (!string.IsNullOrEmpty(RequestId)) d["request_id"] = RequestId;
            if (Actions.Count > 0) d["actions"] = Actions.Select(v => (object)v.ToJson()).ToList();
            if (!string.IsNullOrEmpty(ActionChoice)) d["action_choice"] = ActionChoice;
            if (!string.IsNullOrEmpty(ResponseJsonSchema)) d["response_json_schema"] = ResponseJsonSchema;
            return d;
        }
    }

    /// <summary>
    /// Something an NPC may do. Errors (INVALID_ARGUMENT, nothing stored): a bad or repeated
    /// name, a description over 1024 characters, a schema that is not JSON, not an object
    /// schema or over 16 KiB, or one the grammar compiler cannot use (the message says why).
    /// </summary>
    public sealed partial class ActionSpec
    {
        /// <summary>
        /// 1-64 ASCII letters, digits or '_', not starting with a digit; unique in the request.
        /// </summary>
        public string Name = "";
        /// <summary>
        /// What it does, as the NPC is told (at most 1024 characters).
        /// </summary>
        public string Description = "";
        /// <summary>
        /// JSON Schema of the arguments, as JSON text: an object schema ("type": "object");
        /// empty for an action without arguments.
        /// </summary>
        public string ParametersJsonSchema = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ActionSpec FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ActionSpec();
            if (obj.ContainsKey("name") && obj["name"] != null) m.Name = JsonExt.AsString(obj["name"]);
            if (obj.ContainsKey("description") && obj["description"] != null) m.Description = JsonExt.AsString(obj["description"]);
            if (obj.ContainsKey("parameters_json_schema") && obj["parameters_json_schema"] != null) m.ParametersJsonSchema = JsonExt.AsString(obj["parameters_json_schema"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(Name)) d["name"] = Name;
            if (!string.IsNullOrEmpty(Description)) d["description"] = Description;
            if (!string.IsNullOrEmpty(ParametersJsonSchema)) d["parameters_json_schema"] = ParametersJsonSchema;
            return d;
        }
    }

    /// <summary>
    /// An action a reply carries: sent after the reply's speech, before its Final.
    /// </summary>
    public sealed partial class NpcAction
    {
        /// <summary>
        /// 0 for the reply's first action.
        /// </summary>
        public long Index = 0;
        public string Name = "";
        /// <summary>
        /// The arguments, a JSON object valid against the spec's schema.
        /// </summary>
        public string ArgumentsJson = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static NpcAction FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new NpcAction();
            if (obj.ContainsKey("index") && obj["index"] != null) m.Index = JsonExt.AsLong(obj["index"]);
            if (obj.ContainsKey("name") && obj["name"] != null) m.Name = JsonExt.AsString(obj["name"]);
            if (obj.ContainsKey("arguments_json") && obj["arguments_json"] != null) m.ArgumentsJson = JsonExt.AsString(obj["arguments_json"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Index != 0) d["index"] = Index;
            if (!string.IsNullOrEmpty(Name)) d["name"] = Name;
            if (!string.IsNullOrEmpty(ArgumentsJson)) d["arguments_json"] = ArgumentsJson;
            return d;
        }
    }

    /// <summary>
    /// Events of one Speak, in order: Started, then Token and Sentence events, then the
    /// reply's Action events (stored with it), then Final.
    /// </summary>
    public sealed partial class SpeakEvent
    {
        /// <summary>
        /// Seconds since the server received the request.
        /// </summary>
        public double ElapsedSeconds = 0;
        public Started Started = null;
        public TokenDelta Token = null;
        public Sentence Sentence = null;
        public FinalReply Final = null;
        public NpcAction Action = null;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static SpeakEvent FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new SpeakEvent();
            if (obj.ContainsKey("elapsed_seconds") && obj["elapsed_seconds"] != null) m.ElapsedSeconds = JsonExt.AsDouble(obj["elapsed_seconds"]);
            if (obj.ContainsKey("started") && obj["started"] != null) m.Started = Started.FromJson(obj["started"] as Dictionary<string, object>);
            if (obj.ContainsKey("token") && obj["token"] != null) m.Token = TokenDelta.FromJson(obj["token"] as Dictionary<string, object>);
            if (obj.ContainsKey("sentence") && obj["sentence"] != null) m.Sentence = Sentence.FromJson(obj["sentence"] as Dictionary<string, object>);
            if (obj.ContainsKey("final") && obj["final"] != null) m.Final = FinalReply.FromJson(obj["final"] as Dictionary<string, object>);
            if (obj.ContainsKey("action") && obj["action"] != null) m.Action = NpcAction.FromJson(obj["action"] as Dictionary<string, object>);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (ElapsedSeconds != 0) d["elapsed_seconds"] = ElapsedSeconds;
            if (Started != null) d["started"] = Started.ToJson();
            if (Token != null) d["token"] = Token.ToJson();
            if (Sentence != null) d["sentence"] = Sentence.ToJson();
            if (Final != null) d["final"] = Final.ToJson();
            if (Action != null) d["action"] = Action.ToJson();
            return d;
        }
    }

    /// <summary>proto Started.</summary>
    public sealed partial class Started
    {
        public string RequestId = "";
        public string SessionId = "";
        public string NpcId = "";
        /// <summary>
        /// The NPC's display name.
        /// </summary>
        public string NpcName = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static Started FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new Started();
            if (obj.ContainsKey("request_id") && obj["request_id"] != null) m.RequestId = JsonExt.AsString(obj["request_id"]);
            if (obj.ContainsKey("session_id") && obj["session_id"] != null) m.SessionId = JsonExt.AsString(obj["session_id"]);
            if (obj.ContainsKey("npc_id") && obj["npc_id"] != null) m.NpcId = JsonExt.AsString(obj["npc_id"]);
            if (obj.ContainsKey("npc_name") && obj["npc_name"] != null) m.NpcName = JsonExt.AsString(obj["npc_name"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(RequestId)) d["request_id"] = RequestId;
            if (!string.IsNullOrEmpty(SessionId)) d["session_id"] = SessionId;
            if (!string.IsNullOrEmpty(NpcId)) d["npc_id"] = NpcId;
            if (!string.IsNullOrEmpty(NpcName)) d["npc_name"] = NpcName;
            return d;
        }
    }

    /// <summary>
    /// New text of the reply and the tokens that made it; the text is empty when they complete
    /// no printable character yet. A reply's first token comes alone, at once; later ones come
    /// merged, an event about every 20 ms (the engine's stream interval), and more tokens to an
    /// event when the reader falls behind: a stream costs per event, not per token.
    /// </summary>
    public sealed partial class TokenDelta
    {
        public string Text = "";
        public List<long> TokenIds = new List<long>();

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static TokenDelta FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new TokenDelta();
            if (obj.ContainsKey("text") && obj["text"] != null) m.Text = JsonExt.AsString(obj["text"]);
            foreach (var v in JsonExt.AsList(obj.Get("token_ids"))) m.TokenIds.Add(JsonExt.AsLong(v));
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(Text)) d["text"] = Text;
            if (TokenIds.Count > 0) d["token_ids"] = TokenIds.Select(v => (object)v).ToList();
            return d;
        }
    }

    /// <summary>
    /// A complete sentence of the reply, for subtitles and text-to-speech: sent as soon as
    /// its end (., !, ?, ... or a line break, then a space) has been generated. The last
    /// sentence comes just before Final. Concatenating them gives the reply, up to spaces.
    /// </summary>
    public sealed partial class Sentence
    {
        /// <summary>
        /// 0 for the first sentence of the reply.
        /// </summary>
        public long Index = 0;
        public string Text = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static Sentence FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new Sentence();
            if (obj.ContainsKey("index") && obj["index"] != null) m.Index = JsonExt.AsLong(obj["index"]);
            if (obj.ContainsKey("text") && obj["text"] != null) m.Text = JsonExt.AsString(obj["text"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Index != 0) d["index"] = Index;
            if (!string.IsNullOrEmpty(Text)) d["text"] = Text;
            return d;
        }
    }

    /// <summary>proto Final.</summary>
    public sealed partial class FinalReply
    {
        /// <summary>
        /// The whole reply, trimmed.
        /// </summary>
        public string Text = "";
        /// <summary>
        /// One of: FINISH_REASON_STOP, FINISH_REASON_LENGTH, FINISH_REASON_CANCELLED.
        /// </summary>
        public string FinishReason = "FINISH_REASON_UNSPECIFIED";
        /// <summary>
        /// Tokens in the prompt (profile and the part of the session that fitted).
        /// </summary>
        public long PromptTokens = 0;
        public long CompletionTokens = 0;
        /// <summary>
        /// Prompt tokens whose attention state was reused from the cache.
        /// </summary>
        public long CachedPromptTokens = 0;
        /// <summary>
        /// Seconds from the engine accepting the request to the first token (absent when no
        /// token was generated).
        /// </summary>
        public double? TimeToFirstTokenSeconds = null;
        public double TotalSeconds = 0;
        /// <summary>
        /// True when the player's line and this reply are stored in the session (committed
        /// to disk before this event is sent).
        /// </summary>
        public bool Stored = false;
        /// <summary>
        /// The actions the reply carries, as sent in Action events.
        /// </summary>
        public List<NpcAction> Actions = new List<NpcAction>();

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static FinalReply FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new FinalReply();
            if (obj.ContainsKey("text") && obj["text"] != null) m.Text = JsonExt.AsString(obj["text"]);
            if (obj.ContainsKey("finish_reason") && obj["finish_reason"] != null) m.FinishReason = JsonExt.AsString(obj["finish_reason"]);
            if (obj.ContainsKey("prompt_tokens") && obj["prompt_tokens"] != null) m.PromptTokens = JsonExt.AsLong(obj["prompt_tokens"]);
            if (obj.ContainsKey("completion_tokens") && obj["completion_tokens"] != null) m.CompletionTokens = JsonExt.AsLong(obj["completion_tokens"]);
            if (obj.ContainsKey("cached_prompt_tokens") && obj["cached_prompt_tokens"] != null) m.CachedPromptTokens = JsonExt.AsLong(obj["cached_prompt_tokens"]);
            if (obj.ContainsKey("time_to_first_token_seconds") && obj["time_to_first_token_seconds"] != null) m.TimeToFirstTokenSeconds = JsonExt.AsDouble(obj["time_to_first_token_seconds"]);
            if (obj.ContainsKey("total_seconds") && obj["total_seconds"] != null) m.TotalSeconds = JsonExt.AsDouble(obj["total_seconds"]);
            if (obj.ContainsKey("stored") && obj["stored"] != null) m.Stored = JsonExt.AsBool(obj["stored"]);
            foreach (var v in JsonExt.AsList(obj.Get("actions"))) m.Actions.Add(NpcAction.FromJson(v as Dictionary<string, object>));
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(Text)) d["text"] = Text;
            if (FinishReason != "FINISH_REASON_UNSPECIFIED") d["finish_reason"] = FinishReason;
            if (PromptTokens != 0) d["prompt_tokens"] = PromptTokens;
            if (CompletionTokens != 0) d["completion_tokens"] = CompletionTokens;
            if (CachedPromptTokens != 0) d["cached_prompt_tokens"] = CachedPromptTokens;
            if (TimeToFirstTokenSeconds != null) d["time_to_first_token_seconds"] = TimeToFirstTokenSeconds.Value;
            if (TotalSeconds != 0) d["total_seconds"] = TotalSeconds;
            if (Stored) d["stored"] = Stored;
            if (Actions.Count > 0) d["actions"] = Actions.Select(v => (object)v.ToJson()).ToList();
            return d;
        }
    }

    /// <summary>proto ReactRequest.</summary>
    public sealed partial class ReactRequest
    {
        /// <summary>
        /// The conversation, as in SpeakRequest.
        /// </summary>
        public string SessionId = "";
        /// <summary>
        /// The player's line, as in SpeakRequest.
        /// </summary>
        public string Text = "";
        /// <summary>
        /// How the player appears to NPCs in the prompt, as in SpeakRequest.
        /// </summary>
        public string SpeakerName = null;
        /// <summary>
        /// The NPCs that answer, 1-8, each once; their replies are stored in this order.
        /// </summary>
        public List<string> NpcIds = new List<string>();
        /// <summary>
        /// For every reply (a seed gives each NPC its own reproducible reply).
        /// </summary>
        public Sampling Sampling = null;
        /// <summary>
        /// An id for Cancel (it cancels every reply of the call), as in SpeakRequest.
        /// </summary>
        public string RequestId = "";
        /// <summary>
        /// Each NPC also hears the replies of the NPCs before it in npc_ids (one after
        /// another: slower than all at once).
        /// </summary>
        public bool HearEarlierReplies = false;
        /// <summary>
        /// What every NPC of the call may do, as in SpeakRequest (each reply its own calls).
        /// </summary>
        public List<ActionSpec> Actions = new List<ActionSpec>();
        public string ActionChoice = "";
        /// <summary>
        /// As in SpeakRequest: every reply is one JSON value of this schema.
        /// </summary>
        public string ResponseJsonSchema = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ReactRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ReactRequest();
            if (obj.ContainsKey("session_id") && obj["session_id"] != null) m.SessionId = JsonExt.AsString(obj["session_id"]);
            if (obj.ContainsKey("text") && obj["text"] != null) m.Text = JsonExt.AsString(obj["text"]);
            if (obj.ContainsKey("speaker_name") && obj["speaker_name"] != null) m.SpeakerName = JsonExt.AsString(obj["speaker_name"]);
            foreach (var v in JsonExt.AsList(obj.Get("npc_ids"))) m.NpcIds.Add(JsonExt.AsString(v));
            if (obj.ContainsKey("sampling") && obj["sampling"] != null) m.Sampling = Sampling.FromJson(obj["sampling"] as Dictionary<string, object>);
            if (obj.ContainsKey("request_id") && obj["request_id"] != null) m.RequestId = JsonExt.AsString(obj["request_id"]);
            if (obj.ContainsKey("hear_earlier_replies") && obj["hear_earlier_replies"] != null) m.HearEarlierReplies = JsonExt.AsBool(obj["hear_earlier_replies"]);
            foreach (var v in JsonExt.AsList(obj.Get("actions"))) m.Actions.Add(ActionSpec.FromJson(v as Dictionary<string, object>));
            if (obj.ContainsKey("action_choice") && obj["action_choice"] != null) m.ActionChoice = JsonExt.AsString(obj["action_choice"]);
            if (obj.ContainsKey("response_json_schema") && obj["response_json_schema"] != null) m.ResponseJsonSchema = JsonExt.AsString(obj["response_json_schema"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(SessionId)) d["session_id"] = SessionId;
            if (!string.IsNullOrEmpty(Text)) d["text"] = Text;
            if (SpeakerName != null) d["speaker_name"] = SpeakerName;
            if (NpcIds.Count > 0) d["npc_ids"] = NpcIds.Select(v => (object)v).ToList();
            if (Sampling != null) d["sampling"] = Sampling.ToJson();
            if (!string.IsNullOrEmpty(RequestId)) d["request_id"] = RequestId;
            if (HearEarlierReplies) d["hear_earlier_replies"] = HearEarlierReplies;
            if (Actions.Count > 0) d["actions"] = Actions.Select(v => (object)v.ToJson()).ToList();
            if (!string.IsNullOrEmpty(ActionChoice)) d["action_choice"] = ActionChoice;
            if (!string.IsNullOrEmpty(ResponseJsonSchema)) d["response_json_schema"] = ResponseJsonSchema;
            return d;
        }
    }

    /// <summary>
    /// Events of one React, in order: a Started per NPC, Token and Sentence events of all
    /// NPCs interleaved as they are generated, then, once everything is stored, per NPC in
    /// npc_ids order its Action events and its reply event, then Done.
    /// </summary>
    public sealed partial class ReactEvent
    {
        /// <summary>
        /// Seconds since the server received the request.
        /// </summary>
        public double ElapsedSeconds = 0;
        /// <summary>
        /// Whose event this is; empty for Done.
        /// </summary>
        public string NpcId = "";
        public Started Started = null;
        public TokenDelta Token = null;
        public Sentence Sentence = null;
        /// <summary>
        /// One NPC's whole reply (its stored flag as in Speak's Final).
        /// </summary>
        public FinalReply Reply = null;
        public ReactDone Done = null;
        public NpcAction Action = null;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ReactEvent FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ReactEvent();
            if (obj.ContainsKey("elapsed_seconds") && obj["elapsed_seconds"] != null) m.ElapsedSeconds = JsonExt.AsDouble(obj["elapsed_seconds"]);
            if (obj.ContainsKey("npc_id") && obj["npc_id"] != null) m.NpcId = JsonExt.AsString(obj["npc_id"]);
            if (obj.ContainsKey("started") && obj["started"] != null) m.Started = Started.FromJson(obj["started"] as Dictionary<string, object>);
            if (obj.ContainsKey("token") && obj["token"] != null) m.Token = TokenDelta.FromJson(obj["token"] as Dictionary<string, object>);
            if (obj.ContainsKey("sentence") && obj["sentence"] != null) m.Sentence = Sentence.FromJson(obj["sentence"] as Dictionary<string, object>);
            if (obj.ContainsKey("reply") && obj["reply"] != null) m.Reply = FinalReply.FromJson(obj["reply"] as Dictionary<string, object>);
            if (obj.ContainsKey("done") && obj["done"] != null) m.Done = ReactDone.FromJson(obj["done"] as Dictionary<string, object>);
            if (obj.ContainsKey("action") && obj["action"] != null) m.Action = NpcAction.FromJson(obj["action"] as Dictionary<string, object>);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (ElapsedSeconds != 0) d["elapsed_seconds"] = ElapsedSeconds;
            if (!string.IsNullOrEmpty(NpcId)) d["npc_id"] = NpcId;
            if (Started != null) d["started"] = Started.ToJson();
            if (Token != null) d["token"] = Token.ToJson();
            if (Sentence != null) d["sentence"] = Sentence.ToJson();
            if (Reply != null) d["reply"] = Reply.ToJson();
            if (Done != null) d["done"] = Done.ToJson();
            if (Action != null) d["action"] = Action.ToJson();
            return d;
        }
    }

    /// <summary>proto ReactDone.</summary>
    public sealed partial class ReactDone
    {
        /// <summary>
        /// True when the player's line and the replies are stored (committed to disk before
        /// this event is sent).
        /// </summary>
        public bool Stored = false;
        /// <summary>
        /// Turns stored: the player's line and every reply that was not empty.
        /// </summary>
        public long TurnsStored = 0;
        public double TotalSeconds = 0;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ReactDone FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ReactDone();
            if (obj.ContainsKey("stored") && obj["stored"] != null) m.Stored = JsonExt.AsBool(obj["stored"]);
            if (obj.ContainsKey("turns_stored") && obj["turns_stored"] != null) m.TurnsStored = JsonExt.AsLong(obj["turns_stored"]);
            if (obj.ContainsKey("total_seconds") && obj["total_seconds"] != null) m.TotalSeconds = JsonExt.AsDouble(obj["total_seconds"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Stored) d["stored"] = Stored;
            if (TurnsStored != 0) d["turns_stored"] = TurnsStored;
            if (TotalSeconds != 0) d["total_seconds"] = TotalSeconds;
            return d;
        }
    }

    /// <summary>proto ConverseRequest.</summary>
    public sealed partial class ConverseRequest
    {
        /// <summary>
        /// The conversation, as in SpeakRequest.
        /// </summary>
        public string SessionId = "";
        /// <summary>
        /// The NPCs of the scene, 2-8, each once, speaking in this order.
        /// </summary>
        public List<string> NpcIds = new List<string>();
        /// <summary>
        /// Turns in all, 1-32; 0: one round (one turn each).
        /// </summary>
        public long Turns = 0;
        /// <summary>
        /// The line that opens the scene (the player's, or a narrator's under speaker_name),
        /// with the rules of SpeakRequest.text.
        /// </summary>
        public string Text = "";
        /// <summary>
        /// Who says the opening line, as SpeakRequest.speaker_name (default "Player").
        /// </summary>
        public string SpeakerName = null;
        /// <summary>
        /// For every turn.
        /// </summary>
        public Sampling Sampling = null;
        /// <summary>
        /// An id for Cancel (it stops the scene), as in SpeakRequest.
        /// </summary>
        public string RequestId = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ConverseRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ConverseRequest();
            if (obj.ContainsKey("session_id") && obj["session_id"] != null) m.SessionId = JsonExt.AsString(obj["session_id"]);
            foreach (var v in JsonExt.AsList(obj.Get("npc_ids"))) m.NpcIds.Add(JsonExt.AsString(v));
            if (obj.ContainsKey("turns") && obj["turns"] != null) m.Turns = JsonExt.AsLong(obj["turns"]);
            if (obj.ContainsKey("text") && obj["text"] != null) m.Text = JsonExt.AsString(obj["text"]);
            if (obj.ContainsKey("speaker_name") && obj["speaker_name"] != null) m.SpeakerName = JsonExt.AsString(obj["speaker_name"]);
            if (obj.ContainsKey("sampling") && obj["sampling"] != null) m.Sampling = Sampling.FromJson(obj["sampling"] as Dictionary<string, object>);
            if (obj.ContainsKey("request_id") && obj["request_id"] != null) m.RequestId = JsonExt.AsString(obj["request_id"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(SessionId)) d["session_id"] = SessionId;
            if (NpcIds.Count > 0) d["npc_ids"] = NpcIds.Select(v => (object)v).ToList();
            if (Turns != 0) d["turns"] = Turns;
            if (!string.IsNullOrEmpty(Text)) d["text"] = Text;
            if (SpeakerName != null) d["speaker_name"] = SpeakerName;
            if (Sampling != null) d["sampling"] = Sampling.ToJson();
            if (!string.IsNullOrEmpty(RequestId)) d["request_id"] = RequestId;
            return d;
        }
    }

    /// <summary>
    /// Events of one Converse, turn after turn: Started, Token and Sentence events, then the
    /// turn's reply (stored), then the next turn; Done last.
    /// </summary>
    public sealed partial class ConverseEvent
    {
        /// <summary>
        /// Seconds since the server received the request.
        /// </summary>
        public double ElapsedSeconds = 0;
        /// <summary>
        /// Who speaks this turn; empty for Done.
        /// </summary>
        public string NpcId = "";
        /// <summary>
        /// The turn of the scene, from 0.
        /// </summary>
        public long Turn = 0;
        public Started Started = null;
        public TokenDelta Token = null;
        public Sentence Sentence = null;
        /// <summary>
        /// The turn's whole reply (its stored flag as in Speak's Final).
        /// </summary>
        public FinalReply Reply = null;
        public ConverseDone Done = null;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ConverseEvent FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ConverseEvent();
            if (obj.ContainsKey("elapsed_seconds") && obj["elapsed_seconds"] != null) m.ElapsedSeconds = JsonExt.AsDouble(obj["elapsed_seconds"]);
            if (obj.ContainsKey("npc_id") && obj["npc_id"] != null) m.NpcId = JsonExt.AsString(obj["npc_id"]);
            if (obj.ContainsKey("turn") && obj["turn"] != null) m.Turn = JsonExt.AsLong(obj["turn"]);
            if (obj.ContainsKey("started") && obj["started"] != null) m.Started = Started.FromJson(obj["started"] as Dictionary<string, object>);
            if (obj.ContainsKey("token") && obj["token"] != null) m.Token = TokenDelta.FromJson(obj["token"] as Dictionary<string, object>);
            if (obj.ContainsKey("sentence") && obj["sentence"] != null) m.Sentence = Sentence.FromJson(obj["sentence"] as Dictionary<string, object>);
            if (obj.ContainsKey("reply") && obj["reply"] != null) m.Reply = FinalReply.FromJson(obj["reply"] as Dictionary<string, object>);
            if (obj.ContainsKey("done") && obj["done"] != null) m.Done = ConverseDone.FromJson(obj["done"] as Dictionary<string, object>);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (ElapsedSeconds != 0) d["elapsed_seconds"] = ElapsedSeconds;
            if (!string.IsNullOrEmpty(NpcId)) d["npc_id"] = NpcId;
            if (Turn != 0) d["turn"] = Turn;
            if (Started != null) d["started"] = Started.ToJson();
            if (Token != null) d["token"] = Token.ToJson();
            if (Sentence != null) d["sentence"] = Sentence.ToJson();
            if (Reply != null) d["reply"] = Reply.ToJson();
            if (Done != null) d["done"] = Done.ToJson();
            return d;
        }
    }

    /// <summary>proto ConverseDone.</summary>
    public sealed partial class ConverseDone
    {
        /// <summary>
        /// Turns stored by the scene (the opening line included).
        /// </summary>
        public long TurnsStored = 0;
        /// <summary>
        /// True when the scene ended early (Cancel); the turns before are stored.
        /// </summary>
        public bool Cancelled = false;
        public double TotalSeconds = 0;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ConverseDone FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ConverseDone();
            if (obj.ContainsKey("turns_stored") && obj["turns_stored"] != null) m.TurnsStored = JsonExt.AsLong(obj["turns_stored"]);
            if (obj.ContainsKey("cancelled") && obj["cancelled"] != null) m.Cancelled = JsonExt.AsBool(obj["cancelled"]);
            if (obj.ContainsKey("total_seconds") && obj["total_seconds"] != null) m.TotalSeconds = JsonExt.AsDouble(obj["total_seconds"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (TurnsStored != 0) d["turns_stored"] = TurnsStored;
            if (Cancelled) d["cancelled"] = Cancelled;
            if (TotalSeconds != 0) d["total_seconds"] = TotalSeconds;
            return d;
        }
    }

    /// <summary>proto CancelRequest.</summary>
    public sealed partial class CancelRequest
    {
        public string RequestId = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static CancelRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new CancelRequest();
            if (obj.ContainsKey("request_id") && obj["request_id"] != null) m.RequestId = JsonExt.AsString(obj["request_id"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(RequestId)) d["request_id"] = RequestId;
            return d;
        }
    }

    /// <summary>proto CancelResponse.</summary>
    public sealed partial class CancelResponse
    {

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static CancelResponse FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new CancelResponse();
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            return d;
        }
    }

    /// <summary>proto NpcProfile.</summary>
    public sealed partial class NpcProfile
    {
        /// <summary>
        /// 1-64 letters, digits, '_' or '-', starting with a letter or digit.
        /// </summary>
        public string Id = "";
        /// <summary>
        /// Display name, 1-128 characters.
        /// </summary>
        public string Name = "";
        /// <summary>
        /// Who the NPC is, what it cares about, how it talks: 1-8192 characters.
        /// </summary>
        public string Profile = "";
        /// <summary>
        /// Optional: one sentence on its way of speaking (at most 1024 characters).
        /// </summary>
        public string Style = "";
        /// <summary>
        /// Optional greeting (at most 1024 characters).
        /// </summary>
        public string Greeting = "";
        /// <summary>
        /// Optional example lines in its voice: at most 16, each at most 1024 characters.
        /// </summary>
        public List<string> Examples = new List<string>();
        /// <summary>
        /// Optional: what the NPC may do in any reply (rules of SpeakRequest.actions, at most
        /// 16); a call's own actions join them, replacing one of the same name.
        /// </summary>
        public List<ActionSpec> Actions = new List<ActionSpec>();

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static NpcProfile FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new NpcProfile();
            if (obj.ContainsKey("id") && obj["id"] != null) m.Id = JsonExt.AsString(obj["id"]);
            if (obj.ContainsKey("name") && obj["name"] != null) m.Name = JsonExt.AsString(obj["name"]);
            if (obj.ContainsKey("profile") && obj["profile"] != null) m.Profile = JsonExt.AsString(obj["profile"]);
            if (obj.ContainsKey("style") && obj["style"] != null) m.Style = JsonExt.AsString(obj["style"]);
            if (obj.ContainsKey("greeting") && obj["greeting"] != null) m.Greeting = JsonExt.AsString(obj["greeting"]);
            foreach (var v in JsonExt.AsList(obj.Get("examples"))) m.Examples.Add(JsonExt.AsString(v));
            foreach (var v in JsonExt.AsList(obj.Get("actions"))) m.Actions.Add(ActionSpec.FromJson(v as Dictionary<string, object>));
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(Id)) d["id"] = Id;
            if (!string.IsNullOrEmpty(Name)) d["name"] = Name;
            if (!string.IsNullOrEmpty(Profile)) d["profile"] = Profile;
            if (!string.IsNullOrEmpty(Style)) d["style"] = Style;
            if (!string.IsNullOrEmpty(Greeting)) d["greeting"] = Greeting;
            if (Examples.Count > 0) d["examples"] = Examples.Select(v => (object)v).ToList();
            if (Actions.Count > 0) d["actions"] = Actions.Select(v => (object)v.ToJson()).ToList();
            return d;
        }
    }

    /// <summary>
    /// One block's share of an NPC's voice.
    /// </summary>
    public sealed partial class BlendEntry
    {
        public string BlockId = "";
        /// <summary>
        /// In (0, 1]; the weights of one NPC sum to 1.
        /// </summary>
        public double Weight = 0;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static BlendEntry FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new BlendEntry();
            if (obj.ContainsKey("block_id") && obj["block_id"] != null) m.BlockId = JsonExt.AsString(obj["block_id"]);
            if (obj.ContainsKey("weight") && obj["weight"] != null) m.Weight = JsonExt.AsDouble(obj["weight"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(BlockId)) d["block_id"] = BlockId;
            if (Weight != 0) d["weight"] = Weight;
            return d;
        }
    }

    /// <summary>proto Npc.</summary>
    public sealed partial class Npc
    {
        public NpcProfile Profile = null;
        /// <summary>
        /// One of: NPC_KIND_BLOCK, NPC_KIND_FUSED.
        /// </summary>
        public string Kind = "NPC_KIND_UNSPECIFIED";
        /// <summary>
        /// Heaviest first. A block NPC has one entry: its own block, weight 1.
        /// </summary>
        public List<BlendEntry> Blend = new List<BlendEntry>();
        /// <summary>
        /// The lore files this NPC knows (the world's and its own, from the daemon's lore
        /// folder: `serve --lore`), by path in that folder.
        /// </summary>
        public List<LoreSource> Lore = new List<LoreSource>();

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static Npc FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new Npc();
            if (obj.ContainsKey("profile") && obj["profile"] != null) m.Profile = NpcProfile.FromJson(obj["profile"] as Dictionary<string, object>);
            if (obj.ContainsKey("kind") && obj["kind"] != null) m.Kind = JsonExt.AsString(obj["kind"]);
            foreach (var v in JsonExt.AsList(obj.Get("blend"))) m.Blend.Add(BlendEntry.FromJson(v as Dictionary<string, object>));
            foreach (var v in JsonExt.AsList(obj.Get("lore"))) m.Lore.Add(LoreSource.FromJson(v as Dictionary<string, object>));
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Profile != null) d["profile"] = Profile.ToJson();
            if (Kind != "NPC_KIND_UNSPECIFIED") d["kind"] = Kind;
            if (Blend.Count > 0) d["blend"] = Blend.Select(v => (object)v.ToJson()).ToList();
            if (Lore.Count > 0) d["lore"] = Lore.Select(v => (object)v.ToJson()).ToList();
            return d;
        }
    }

    /// <summary>proto LoreSource.</summary>
    public sealed partial class LoreSource
    {
        /// <summary>
        /// The file, relative to the lore folder ("world.txt", "brann/forge.txt").
        /// </summary>
        public string Path = "";
        /// <summary>
        /// Its passages (paragraphs), each retrieved on its own when a scene is near it.
        /// </summary>
        public long Passages = 0;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static LoreSource FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new LoreSource();
            if (obj.ContainsKey("path") && obj["path"] != null) m.Path = JsonExt.AsString(obj["path"]);
            if (obj.ContainsKey("passages") && obj["passages"] != null) m.Passages = JsonExt.AsLong(obj["passages"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(Path)) d["path"] = Path;
            if (Passages != 0) d["passages"] = Passages;
            return d;
        }
    }

    /// <summary>proto RegisterNpcRequest.</summary>
    public sealed partial class RegisterNpcRequest
    {
        public NpcProfile Profile = null;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static RegisterNpcRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new RegisterNpcRequest();
            if (obj.ContainsKey("profile") && obj["profile"] != null) m.Profile = NpcProfile.FromJson(obj["profile"] as Dictionary<string, object>);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Profile != null) d["profile"] = Profile.ToJson();
            return d;
        }
    }

    /// <summary>
    /// One line of a dialogue record's context.
    /// </summary>
    public sealed partial class Line
    {
        /// <summary>
        /// Who said it: a display name or an NPC id (the new NPC's own lines use its id or
        /// name).
        /// </summary>
        public string Speaker = "";
        public string Text = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static Line FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new Line();
            if (obj.ContainsKey("speaker") && obj["speaker"] != null) m.Speaker = JsonExt.AsString(obj["speaker"]);
            if (obj.ContainsKey("text") && obj["text"] != null) m.Text = JsonExt.AsString(obj["text"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(Speaker)) d["speaker"] = Speaker;
            if (!string.IsNullOrEmpty(Text)) d["text"] = Text;
            return d;
        }
    }

    /// <summary>
    /// One reply of the new NPC, with the lines that led to it.
    /// </summary>
    public sealed partial class DialogueRecord
    {
        public List<Line> Context = new List<Line>();
        /// <summary>
        /// The NPC's reply: not empty.
        /// </summary>
        public string Reply = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static DialogueRecord FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new DialogueRecord();
            foreach (var v in JsonExt.AsList(obj.Get("context"))) m.Context.Add(Line.FromJson(v as Dictionary<string, object>));
            if (obj.ContainsKey("reply") && obj["reply"] != null) m.Reply = JsonExt.AsString(obj["reply"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Context.Count > 0) d["context"] = Context.Select(v => (object)v.ToJson()).ToList();
            if (!string.IsNullOrEmpty(Reply)) d["reply"] = Reply;
            return d;
        }
    }

    /// <summary>
    /// Training options; every field is optional and falls back to the default shown.
    /// </summary>
    public sealed partial class TrainingOptions
    {
        /// <summary>
        /// Passes over the records, in (0, 100] (default 2).
        /// </summary>
        public double? Epochs = null;
        /// <summary>
        /// In (0, 0.1] (default 1e-3).
        /// </summary>
        public double? LearningRate = null;
        /// <summary>
        /// Rows per forward pass, of any characters: 1..64 (default 8).
        /// </summary>
        public long? BatchSize = null;
        /// <summary>
        /// Tokens per example, 32..4096 (default 384); the oldest context lines go first.
        /// </summary>
        public long? MaxLength = null;
        /// <summary>
        /// Context lines per example, 0..64 (default 4).
        /// </summary>
        public long? MaxContextTurns = null;
        public long? Seed = null;
        /// <summary>
        /// Rows of the character per update of its block, 1..64 (default 1; at most batch_size
        /// counts). Smaller: more, smaller steps on the same data.
        /// </summary>
        public long? BlockBatchSize = null;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static TrainingOptions FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new TrainingOptions();
            if (obj.ContainsKey("epochs") && obj["epochs"] != null) m.Epochs = JsonExt.AsDouble(obj["epochs"]);
            if (obj.ContainsKey("learning_rate") && obj["learning_rate"] != null) m.LearningRate = JsonExt.AsDouble(obj["learning_rate"]);
            if (obj.ContainsKey("batch_size") && obj["batch_size"] != null) m.BatchSize = JsonExt.AsLong(obj["batch_size"]);
            if (obj.ContainsKey("max_length") && obj["max_length"] != null) m.MaxLength = JsonExt.AsLong(obj["max_length"]);
            if (obj.ContainsKey("max_context_turns") && obj["max_context_turns"] != null) m.MaxContextTurns = JsonExt.AsLong(obj["max_context_turns"]);
            if (obj.ContainsKey("seed") && obj["seed"] != null) m.Seed = JsonExt.AsLong(obj["seed"]);
            if (obj.ContainsKey("block_batch_size") && obj["block_batch_size"] != null) m.BlockBatchSize = JsonExt.AsLong(obj["block_batch_size"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Epochs != null) d["epochs"] = Epochs.Value;
            if (LearningRate != null) d["learning_rate"] = LearningRate.Value;
            if (BatchSize != null) d["batch_size"] = BatchSize.Value;
            if (MaxLength != null) d["max_length"] = MaxLength.Value;
            if (MaxContextTurns != null) d["max_context_turns"] = MaxContextTurns.Value;
            if (Seed != null) d["seed"] = Seed.Value.ToString(CultureInfo.InvariantCulture);
            if (BlockBatchSize != null) d["block_batch_size"] = BlockBatchSize.Value;
            return d;
        }
    }

    /// <summary>proto ExpandNpcRequest.</summary>
    public sealed partial class ExpandNpcRequest
    {
        public NpcProfile Profile = null;
        /// <summary>
        /// 1..10000 records.
        /// </summary>
        public List<DialogueRecord> Records = new List<DialogueRecord>();
        public TrainingOptions Training = null;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ExpandNpcRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ExpandNpcRequest();
            if (obj.ContainsKey("profile") && obj["profile"] != null) m.Profile = NpcProfile.FromJson(obj["profile"] as Dictionary<string, object>);
            foreach (var v in JsonExt.AsList(obj.Get("records"))) m.Records.Add(DialogueRecord.FromJson(v as Dictionary<string, object>));
            if (obj.ContainsKey("training") && obj["training"] != null) m.Training = TrainingOptions.FromJson(obj["training"] as Dictionary<string, object>);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Profile != null) d["profile"] = Profile.ToJson();
            if (Records.Count > 0) d["records"] = Records.Select(v => (object)v.ToJson()).ToList();
            if (Training != null) d["training"] = Training.ToJson();
            return d;
        }
    }

    /// <summary>proto ExpandProgress.</summary>
    public sealed partial class ExpandProgress
    {
        /// <summary>
        /// 1-based optimiser step, of total_steps.
        /// </summary>
        public long Step = 0;
        public long TotalSteps = 0;
        /// <summary>
        /// Training loss of this step (mean negative log-likelihood per reply token).
        /// </summary>
        public double Loss = 0;
        /// <summary>
        /// Estimated seconds until training ends.
        /// </summary>
        public double EtaSeconds = 0;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ExpandProgress FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ExpandProgress();
            if (obj.ContainsKey("step") && obj["step"] != null) m.Step = JsonExt.AsLong(obj["step"]);
            if (obj.ContainsKey("total_steps") && obj["total_steps"] != null) m.TotalSteps = JsonExt.AsLong(obj["total_steps"]);
            if (obj.ContainsKey("loss") && obj["loss"] != null) m.Loss = JsonExt.AsDouble(obj["loss"]);
            if (obj.ContainsKey("eta_seconds") && obj["eta_seconds"] != null) m.EtaSeconds = JsonExt.AsDouble(obj["eta_seconds"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Step != 0) d["step"] = Step;
            if (TotalSteps != 0) d["total_steps"] = TotalSteps;
            if (Loss != 0) d["loss"] = Loss;
            if (EtaSeconds != 0) d["eta_seconds"] = EtaSeconds;
            return d;
        }
    }

    /// <summary>proto ExpandDone.</summary>
    public sealed partial class ExpandDone
    {
        /// <summary>
        /// The new NPC, speaking and saved.
        /// </summary>
        public Npc Npc = null;
        public long Steps = 0;
        public double Seconds = 0;
        /// <summary>
        /// Smoothed loss at the end of training.
        /// </summary>
        public double FinalLoss = 0;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ExpandDone FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ExpandDone();
            if (obj.ContainsKey("npc") && obj["npc"] != null) m.Npc = Npc.FromJson(obj["npc"] as Dictionary<string, object>);
            if (obj.ContainsKey("steps") && obj["steps"] != null) m.Steps = JsonExt.AsLong(obj["steps"]);
            if (obj.ContainsKey("seconds") && obj["seconds"] != null) m.Seconds = JsonExt.AsDouble(obj["seconds"]);
            if (obj.ContainsKey("final_loss") && obj["final_loss"] != null) m.FinalLoss = JsonExt.AsDouble(obj["final_loss"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Npc != null) d["npc"] = Npc.ToJson();
            if (Steps != 0) d["steps"] = Steps;
            if (Seconds != 0) d["seconds"] = Seconds;
            if (FinalLoss != 0) d["final_loss"] = FinalLoss;
            return d;
        }
    }

    /// <summary>proto ExpandEvent.</summary>
    public sealed partial class ExpandEvent
    {
        public ExpandProgress Progress = null;
        public ExpandDone Done = null;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ExpandEvent FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ExpandEvent();
            if (obj.ContainsKey("progress") && obj["progress"] != null) m.Progress = ExpandProgress.FromJson(obj["progress"] as Dictionary<string, object>);
            if (obj.ContainsKey("done") && obj["done"] != null) m.Done = ExpandDone.FromJson(obj["done"] as Dictionary<string, object>);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Progress != null) d["progress"] = Progress.ToJson();
            if (Done != null) d["done"] = Done.ToJson();
            return d;
        }
    }

    /// <summary>proto ListNpcsRequest.</summary>
    public sealed partial class ListNpcsRequest
    {

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ListNpcsRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ListNpcsRequest();
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            return d;
        }
    }

    /// <summary>proto ListNpcsResponse.</summary>
    public sealed partial class ListNpcsResponse
    {
        public List<Npc> Npcs = new List<Npc>();

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ListNpcsResponse FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ListNpcsResponse();
            foreach (var v in JsonExt.AsList(obj.Get("npcs"))) m.Npcs.Add(Npc.FromJson(v as Dictionary<string, object>));
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Npcs.Count > 0) d["npcs"] = Npcs.Select(v => (object)v.ToJson()).ToList();
            return d;
        }
    }

    /// <summary>proto GetNpcRequest.</summary>
    public sealed partial class GetNpcRequest
    {
        public string NpcId = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static GetNpcRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new GetNpcRequest();
            if (obj.ContainsKey("npc_id") && obj["npc_id"] != null) m.NpcId = JsonExt.AsString(obj["npc_id"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(NpcId)) d["npc_id"] = NpcId;
            return d;
        }
    }

    /// <summary>proto RemoveNpcRequest.</summary>
    public sealed partial class RemoveNpcRequest
    {
        public string NpcId = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static RemoveNpcRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new RemoveNpcRequest();
            if (obj.ContainsKey("npc_id") && obj["npc_id"] != null) m.NpcId = JsonExt.AsString(obj["npc_id"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(NpcId)) d["npc_id"] = NpcId;
            return d;
        }
    }

    /// <summary>proto RemoveNpcResponse.</summary>
    public sealed partial class RemoveNpcResponse
    {
        /// <summary>
        /// The NPC as it was.
        /// </summary>
        public Npc Removed = null;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static RemoveNpcResponse FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new RemoveNpcResponse();
            if (obj.ContainsKey("removed") && obj["removed"] != null) m.Removed = Npc.FromJson(obj["removed"] as Dictionary<string, object>);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Removed != null) d["removed"] = Removed.ToJson();
            return d;
        }
    }

    /// <summary>proto Turn.</summary>
    public sealed partial class Turn
    {
        /// <summary>
        /// 1, 2, 3, ... within the session.
        /// </summary>
        public long Seq = 0;
        /// <summary>
        /// One of: SPEAKER_KIND_PLAYER, SPEAKER_KIND_NPC.
        /// </summary>
        public string SpeakerKind = "SPEAKER_KIND_UNSPECIFIED";
        /// <summary>
        /// The NPC's id; empty for the player.
        /// </summary>
        public string NpcId = "";
        /// <summary>
        /// The name the speaker had in the prompt: the player's speaker_name, or the NPC's
        /// display name when it spoke.
        /// </summary>
        public string SpeakerName = "";
        public string Text = "";
        public string CreatedAt = "";
        /// <summary>
        /// The Speak request that stored this turn.
        /// </summary>
        public string RequestId = "";
        /// <summary>
        /// The actions the NPC took with this turn.
        /// </summary>
        public List<NpcAction> Actions = new List<NpcAction>();

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static Turn FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new Turn();
            if (obj.ContainsKey("seq") && obj["seq"] != null) m.Seq = JsonExt.AsLong(obj["seq"]);
            if (obj.ContainsKey("speaker_kind") && obj["speaker_kind"] != null) m.SpeakerKind = JsonExt.AsString(obj["speaker_kind"]);
            if (obj.ContainsKey("npc_id") && obj["npc_id"] != null) m.NpcId = JsonExt.AsString(obj["npc_id"]);
            if (obj.ContainsKey("speaker_name") && obj["speaker_name"] != null) m.SpeakerName = JsonExt.AsString(obj["speaker_name"]);
            if (obj.ContainsKey("text") && obj["text"] != null) m.Text = JsonExt.AsString(obj["text"]);
            if (obj.ContainsKey("created_at") && obj["created_at"] != null) m.CreatedAt = JsonExt.AsString(obj["created_at"]);
            if (obj.ContainsKey("request_id") && obj["request_id"] != null) m.RequestId = JsonExt.AsString(obj["request_id"]);
            foreach (var v in JsonExt.AsList(obj.Get("actions"))) m.Actions.Add(NpcAction.FromJson(v as Dictionary<string, object>));
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Seq != 0) d["seq"] = Seq;
            if (SpeakerKind != "SPEAKER_KIND_UNSPECIFIED") d["speaker_kind"] = SpeakerKind;
            if (!string.IsNullOrEmpty(NpcId)) d["npc_id"] = NpcId;
            if (!string.IsNullOrEmpty(SpeakerName)) d["speaker_name"] = SpeakerName;
            if (!string.IsNullOrEmpty(Text)) d["text"] = Text;
            if (!string.IsNullOrEmpty(CreatedAt)) d["created_at"] = CreatedAt;
            if (!string.IsNullOrEmpty(RequestId)) d["request_id"] = RequestId;
            if (Actions.Count > 0) d["actions"] = Actions.Select(v => (object)v.ToJson()).ToList();
            return d;
        }
    }

    /// <summary>proto Session.</summary>
    public sealed partial class Session
    {
        public string Id = "";
        /// <summary>
        /// One page of turns, oldest first (GetSessionRequest.page_size, at most 256 KiB of text).
        /// </summary>
        public List<Turn> Turns = new List<Turn>();
        public string CreatedAt = "";
        public string UpdatedAt = "";
        /// <summary>
        /// Pass as GetSessionRequest.page_token for the next page; empty on the last page.
        /// </summary>
        public string NextPageToken = "";
        /// <summary>
        /// Turns in the whole session, on every page.
        /// </summary>
        public long TurnCount = 0;
        /// <summary>
        /// What the model wrote of the turns that left the prompt (the latest
        /// --max-history-turns are in it), up to and including turn summary_through_seq:
        /// written in the background once turns leave, and placed in every later prompt of the
        /// session with the older lines nearest the scene. Empty until then.
        /// </summary>
        public string Summary = "";
        public long SummaryThroughSeq = 0;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static Session FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new Session();
            if (obj.ContainsKey("id") && obj["id"] != null) m.Id = JsonExt.AsString(obj["id"]);
            foreach (var v in JsonExt.AsList(obj.Get("turns"))) m.Turns.Add(Turn.FromJson(v as Dictionary<string, object>));
            if (obj.ContainsKey("created_at") && obj["created_at"] != null) m.CreatedAt = JsonExt.AsString(obj["created_at"]);
            if (obj.ContainsKey("updated_at") && obj["updated_at"] != null) m.UpdatedAt = JsonExt.AsString(obj["updated_at"]);
            if (obj.ContainsKey("next_page_token") && obj["next_page_token"] != null) m.NextPageToken = JsonExt.AsString(obj["next_page_token"]);
            if (obj.ContainsKey("turn_count") && obj["turn_count"] != null) m.TurnCount = JsonExt.AsLong(obj["turn_count"]);
            if (obj.ContainsKey("summary") && obj["summary"] != null) m.Summary = JsonExt.AsString(obj["summary"]);
            if (obj.ContainsKey("summary_through_seq") && obj["summary_through_seq"] != null) m.SummaryThroughSeq = JsonExt.AsLong(obj["summary_through_seq"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(Id)) d["id"] = Id;
            if (Turns.Count > 0) d["turns"] = Turns.Select(v => (object)v.ToJson()).ToList();
            if (!string.IsNullOrEmpty(CreatedAt)) d["created_at"] = CreatedAt;
            if (!string.IsNullOrEmpty(UpdatedAt)) d["updated_at"] = UpdatedAt;
            if (!string.IsNullOrEmpty(NextPageToken)) d["next_page_token"] = NextPageToken;
            if (TurnCount != 0) d["turn_count"] = TurnCount;
            if (!string.IsNullOrEmpty(Summary)) d["summary"] = Summary;
            if (SummaryThroughSeq != 0) d["summary_through_seq"] = SummaryThroughSeq;
            return d;
        }
    }

    /// <summary>proto GetSessionRequest.</summary>
    public sealed partial class GetSessionRequest
    {
        public string SessionId = "";
        /// <summary>
        /// Only the latest max_turns turns (paged like the rest); 0: from the first turn.
        /// </summary>
        public long MaxTurns = 0;
        /// <summary>
        /// Turns per page: 1-1000, 200 when 0 (INVALID_ARGUMENT above 1000). A page also ends
        /// before its text passes 256 KiB, so every reply fits a client's default 1 MiB.
        /// </summary>
        public long PageSize = 0;
        /// <summary>
        /// Session.next_page_token of the page before; empty for the first page.
        /// </summary>
        public string PageToken = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static GetSessionRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new GetSessionRequest();
            if (obj.ContainsKey("session_id") && obj["session_id"] != null) m.SessionId = JsonExt.AsString(obj["session_id"]);
            if (obj.ContainsKey("max_turns") && obj["max_turns"] != null) m.MaxTurns = JsonExt.AsLong(obj["max_turns"]);
            if (obj.ContainsKey("page_size") && obj["page_size"] != null) m.PageSize = JsonExt.AsLong(obj["page_size"]);
            if (obj.ContainsKey("page_token") && obj["page_token"] != null) m.PageToken = JsonExt.AsString(obj["page_token"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(SessionId)) d["session_id"] = SessionId;
            if (MaxTurns != 0) d["max_turns"] = MaxTurns;
            if (PageSize != 0) d["page_size"] = PageSize;
            if (!string.IsNullOrEmpty(PageToken)) d["page_token"] = PageToken;
            return d;
        }
    }

    /// <summary>proto SessionSummary.</summary>
    public sealed partial class SessionSummary
    {
        public string Id = "";
        public long TurnCount = 0;
        /// <summary>
        /// The NPCs that have spoken in it, in order of first reply.
        /// </summary>
        public List<string> NpcIds = new List<string>();
        public string CreatedAt = "";
        public string UpdatedAt = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static SessionSummary FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new SessionSummary();
            if (obj.ContainsKey("id") && obj["id"] != null) m.Id = JsonExt.AsString(obj["id"]);
            if (obj.ContainsKey("turn_count") && obj["turn_count"] != null) m.TurnCount = JsonExt.AsLong(obj["turn_count"]);
            foreach (var v in JsonExt.AsList(obj.Get("npc_ids"))) m.NpcIds.Add(JsonExt.AsString(v));
            if (obj.ContainsKey("created_at") && obj["created_at"] != null) m.CreatedAt = JsonExt.AsString(obj["created_at"]);
            if (obj.ContainsKey("updated_at") && obj["updated_at"] != null) m.UpdatedAt = JsonExt.AsString(obj["updated_at"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(Id)) d["id"] = Id;
            if (TurnCount != 0) d["turn_count"] = TurnCount;
            if (NpcIds.Count > 0) d["npc_ids"] = NpcIds.Select(v => (object)v).ToList();
            if (!string.IsNullOrEmpty(CreatedAt)) d["created_at"] = CreatedAt;
            if (!string.IsNullOrEmpty(UpdatedAt)) d["updated_at"] = UpdatedAt;
            return d;
        }
    }

    /// <summary>proto ListSessionsRequest.</summary>
    public sealed partial class ListSessionsRequest
    {
        /// <summary>
        /// 1..1000; 0 means 100.
        /// </summary>
        public long PageSize = 0;
        /// <summary>
        /// next_page_token of the previous page; empty for the first page.
        /// </summary>
        public string PageToken = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ListSessionsRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ListSessionsRequest();
            if (obj.ContainsKey("page_size") && obj["page_size"] != null) m.PageSize = JsonExt.AsLong(obj["page_size"]);
            if (obj.ContainsKey("page_token") && obj["page_token"] != null) m.PageToken = JsonExt.AsString(obj["page_token"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (PageSize != 0) d["page_size"] = PageSize;
            if (!string.IsNullOrEmpty(PageToken)) d["page_token"] = PageToken;
            return d;
        }
    }

    /// <summary>proto ListSessionsResponse.</summary>
    public sealed partial class ListSessionsResponse
    {
        public List<SessionSummary> Sessions = new List<SessionSummary>();
        /// <summary>
        /// Empty on the last page.
        /// </summary>
        public string NextPageToken = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ListSessionsResponse FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ListSessionsResponse();
            foreach (var v in JsonExt.AsList(obj.Get("sessions"))) m.Sessions.Add(SessionSummary.FromJson(v as Dictionary<string, object>));
            if (obj.ContainsKey("next_page_token") && obj["next_page_token"] != null) m.NextPageToken = JsonExt.AsString(obj["next_page_token"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (Sessions.Count > 0) d["sessions"] = Sessions.Select(v => (object)v.ToJson()).ToList();
            if (!string.IsNullOrEmpty(NextPageToken)) d["next_page_token"] = NextPageToken;
            return d;
        }
    }

    /// <summary>proto ResetSessionRequest.</summary>
    public sealed partial class ResetSessionRequest
    {
        public string SessionId = "";

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ResetSessionRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ResetSessionRequest();
            if (obj.ContainsKey("session_id") && obj["session_id"] != null) m.SessionId = JsonExt.AsString(obj["session_id"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(SessionId)) d["session_id"] = SessionId;
            return d;
        }
    }

    /// <summary>proto ResetSessionResponse.</summary>
    public sealed partial class ResetSessionResponse
    {
        public long TurnsRemoved = 0;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static ResetSessionResponse FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new ResetSessionResponse();
            if (obj.ContainsKey("turns_removed") && obj["turns_removed"] != null) m.TurnsRemoved = JsonExt.AsLong(obj["turns_removed"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (TurnsRemoved != 0) d["turns_removed"] = TurnsRemoved;
            return d;
        }
    }

    /// <summary>proto GetStatusRequest.</summary>
    public sealed partial class GetStatusRequest
    {

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static GetStatusRequest FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new GetStatusRequest();
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            return d;
        }
    }

    /// <summary>proto Status.</summary>
    public sealed partial class Status
    {
        public string Version = "";
        /// <summary>
        /// Base model name (e.g. SmolLM2-135M-Instruct) and its path on the server.
        /// </summary>
        public string BaseModel = "";
        public string BaseModelPath = "";
        /// <summary>
        /// Where the model runs: cpu, cuda, ...
        /// </summary>
        public string Device = "";
        public string CastPath = "";
        public long NpcCount = 0;
        public long BlockCount = 0;
        /// <summary>
        /// Speak streams in flight (generating or queued), and the limit.
        /// </summary>
        public long ActiveStreams = 0;
        public long MaxStreams = 0;
        /// <summary>
        /// Requests waiting for a batch slot in the engine.
        /// </summary>
        public long Queued = 0;
        /// <summary>
        /// Attention-state (prompt prefix) cache: bytes used, budget, hits and misses.
        /// </summary>
        public long CacheBytes = 0;
        public long CacheBudgetBytes = 0;
        public long CacheHits = 0;
        public long CacheMisses = 0;
        /// <summary>
        /// The NPC id of the expansion training now, if any.
        /// </summary>
        public string TrainingNpcId = "";
        public double UptimeSeconds = 0;

        /// <summary>From the bridge's JSON (null: null).</summary>
        public static Status FromJson(Dictionary<string, object> obj)
        {
            if (obj == null) return null;
            var m = new Status();
            if (obj.ContainsKey("version") && obj["version"] != null) m.Version = JsonExt.AsString(obj["version"]);
            if (obj.ContainsKey("base_model") && obj["base_model"] != null) m.BaseModel = JsonExt.AsString(obj["base_model"]);
            if (obj.ContainsKey("base_model_path") && obj["base_model_path"] != null) m.BaseModelPath = JsonExt.AsString(obj["base_model_path"]);
            if (obj.ContainsKey("device") && obj["device"] != null) m.Device = JsonExt.AsString(obj["device"]);
            if (obj.ContainsKey("cast_path") && obj["cast_path"] != null) m.CastPath = JsonExt.AsString(obj["cast_path"]);
            if (obj.ContainsKey("npc_count") && obj["npc_count"] != null) m.NpcCount = JsonExt.AsLong(obj["npc_count"]);
            if (obj.ContainsKey("block_count") && obj["block_count"] != null) m.BlockCount = JsonExt.AsLong(obj["block_count"]);
            if (obj.ContainsKey("active_streams") && obj["active_streams"] != null) m.ActiveStreams = JsonExt.AsLong(obj["active_streams"]);
            if (obj.ContainsKey("max_streams") && obj["max_streams"] != null) m.MaxStreams = JsonExt.AsLong(obj["max_streams"]);
            if (obj.ContainsKey("queued") && obj["queued"] != null) m.Queued = JsonExt.AsLong(obj["queued"]);
            if (obj.ContainsKey("cache_bytes") && obj["cache_bytes"] != null) m.CacheBytes = JsonExt.AsLong(obj["cache_bytes"]);
            if (obj.ContainsKey("cache_budget_bytes") && obj["cache_budget_bytes"] != null) m.CacheBudgetBytes = JsonExt.AsLong(obj["cache_budget_bytes"]);
            if (obj.ContainsKey("cache_hits") && obj["cache_hits"] != null) m.CacheHits = JsonExt.AsLong(obj["cache_hits"]);
            if (obj.ContainsKey("cache_misses") && obj["cache_misses"] != null) m.CacheMisses = JsonExt.AsLong(obj["cache_misses"]);
            if (obj.ContainsKey("training_npc_id") && obj["training_npc_id"] != null) m.TrainingNpcId = JsonExt.AsString(obj["training_npc_id"]);
            if (obj.ContainsKey("uptime_seconds") && obj["uptime_seconds"] != null) m.UptimeSeconds = JsonExt.AsDouble(obj["uptime_seconds"]);
            return m;
        }

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {
            var d = new Dictionary<string, object>();
            if (!string.IsNullOrEmpty(Version)) d["version"] = Version;
            if (!string.IsNullOrEmpty(BaseModel)) d["base_model"] = BaseModel;
            if (!string.IsNullOrEmpty(BaseModelPath)) d["base_model_path"] = BaseModelPath;
            if (!string.IsNullOrEmpty(Device)) d["device"] = Device;
            if (!string.IsNullOrEmpty(CastPath)) d["cast_path"] = CastPath;
            if (NpcCount != 0) d["npc_count"] = NpcCount;
            if (BlockCount != 0) d["block_count"] = BlockCount;
            if (ActiveStreams != 0) d["active_streams"] = ActiveStreams;
            if (MaxStreams != 0) d["max_streams"] = MaxStreams;
            if (Queued != 0) d["queued"] = Queued;
            if (CacheBytes != 0) d["cache_bytes"] = CacheBytes.ToString(CultureInfo.InvariantCulture);
            if (CacheBudgetBytes != 0) d["cache_budget_bytes"] = CacheBudgetBytes.ToString(CultureInfo.InvariantCulture);
            if (CacheHits != 0) d["cache_hits"] = CacheHits.ToString(CultureInfo.InvariantCulture);
            if (CacheMisses != 0) d["cache_misses"] = CacheMisses.ToString(CultureInfo.InvariantCulture);
            if (!string.IsNullOrEmpty(TrainingNpcId)) d["training_npc_id"] = TrainingNpcId;
            if (UptimeSeconds != 0) d["uptime_seconds"] = UptimeSeconds;
            return d;
        }
    }
}
