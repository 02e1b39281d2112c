#if UNITY_5_3_OR_NEWER
using System;
using UnityEngine;
using UnityEngine.Events;

namespace NpcRuntime
{
    /// <summary>Text for the inspector: a token, a sentence or a whole reply.</summary>
    [Serializable]
    public class NpcTextEvent : UnityEvent<string> { }

    /// <summary>An action an NPC takes: its name and its arguments (JSON text).</summary>
    [Serializable]
    public class NpcActionEvent : UnityEvent<string, string> { }

    /// <summary>
    /// One NPC in a scene, the way LLMUnity's LLMAgent is: its NPC id and session, and
    /// <see cref="Speak"/> (bindable to a UI event) with the reply streaming into UnityEvents.
    /// Speaks through an <see cref="NpcRuntimeServer"/>: the one set here, or the scene's.
    /// A line spoken before the daemon is ready is sent once it is.
    /// </summary>
    public sealed class NpcVoice : MonoBehaviour
    {
        [Tooltip("Empty: the scene's NpcRuntimeServer")]
        public NpcRuntimeServer server;
        public string npcId = "";
        [Tooltip("The conversation (scene, save slot); several NPCs may share one")]
        public string sessionId = "default";
        [Tooltip("How the player appears in the prompt; empty: Player")]
        public string speakerName = "";
        [Tooltip("0: the daemon's default")]
        public int maxTokens;
        public NpcTextEvent onToken = new NpcTextEvent();
        public NpcTextEvent onSentence = new NpcTextEvent();
        public NpcTextEvent onCompleted = new NpcTextEvent();
        /// <summary>Each action the NPC takes (see <see cref="actions"/>), after its speech.</summary>
        public NpcActionEvent onAction = new NpcActionEvent();
        /// <summary>What this NPC may do in its replies; set from code (SpeakOptions.Action).</summary>
        public System.Collections.Generic.List<ActionSpec> actions = new System.Collections.Generic.List<ActionSpec>();
        /// <summary>The error code (CANCELLED, NOT_FOUND, UNAVAILABLE, ...) and message.</summary>
        public NpcRuntimeFailedEvent onError = new NpcRuntimeFailedEvent();

        /// <summary>The latest reply (its events, text and task), once sent.</summary>
        public SpeakReply Current { get; private set; }

        /// <summary>The player says <paramref name="text"/> to this NPC.</summary>
        public void Speak(string text)
        {
            if (server == null) server = NpcRuntimeServer.Find();
            if (server == null)
            {
                onError.Invoke("FAILED_PRECONDITION", "no NpcRuntimeServer in the scene");
                return;
            }
            server.WhenReady(() => Send(text), error => onError.Invoke(error.Code, error.Message));
        }

        /// <summary>Stops the current reply; onError gets CANCELLED and nothing is stored.</summary>
        public void Cancel()
        {
            if (Current != null) Current.Cancel();
        }

        void Send(string text)
        {
            var options = new SpeakOptions
            {
                SpeakerName = string.IsNullOrEmpty(speakerName) ? null : speakerName,
                MaxTokens = maxTokens > 0 ? maxTokens : (int?)null,
                Actions = actions,
            };
            var reply = server.Client.Speak(npcId, text, sessionId, options);
            Current = reply;
            reply.OnToken += t => onToken.Invoke(t);
            reply.OnSentence += s => onSentence.Invoke(s.Text);
            reply.OnAction += a => onAction.Invoke(a.Name, a.ArgumentsJson);
            reply.OnCompleted += f => onCompleted.Invoke(f.Text);
            reply.OnError += e => onError.Invoke(e.Code, e.Message);
        }
    }
}
#endif
