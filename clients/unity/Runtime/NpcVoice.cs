#if UNITY_5_3_OR_NEWER
using System;
using UnityEngine;
using UnityEngine.Events;

namespace NpcRuntime
{
    /// <summary>Text for the inspector: a token, a sentence or a whole reply.</summary>
    [Serializable]
    public class NpcTextEvent : UnityEvent<string> { }

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
            };
            var reply = server.Client.Speak(npcId, text, sessionId, options);
            Current = reply;
            reply.OnToken += t => onToken.Invoke(t);
            reply.OnSentence += s => onSentence.Invoke(s.Text);
            reply.OnCompleted += f => onCompleted.Invoke(f.Text);
            reply.OnError += e => onError.Invoke(e.Code, e.Message);
        }
    }
}
#endif
