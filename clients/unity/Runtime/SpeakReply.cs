using System;
using System.Collections;
using System.Collections.Generic;
using System.Text;
using System.Threading.Tasks;

namespace NpcRuntime
{
    /// <summary>
    /// One NPC reply in flight. Yield it from a coroutine (it is an IEnumerator that waits
    /// until <see cref="IsDone"/>), await <see cref="Task"/>, or subscribe to the events.
    /// Events, IsDone and the task all change on the client's dispatcher (Unity: the main thread).
    /// </summary>
    public sealed class SpeakReply : IEnumerator
    {
        readonly NpcRuntimeClient client;
        readonly TaskCompletionSource<FinalReply> completion = new TaskCompletionSource<FinalReply>();
        readonly StringBuilder text = new StringBuilder();

        internal SpeakReply(NpcRuntimeClient client, string callId, string npcId, string sessionId)
        {
            this.client = client;
            CallId = callId;
            NpcId = npcId;
            SessionId = sessionId;
        }

        /// <summary>New text of the reply: its first token at once, then what was generated
        /// since, about every 20 ms. Concatenated, the texts make the reply.</summary>
        public event Action<string> OnToken;
        /// <summary>A sentence of the reply, when it completes.</summary>
        public event Action<Sentence> OnSentence;
        /// <summary>An action the NPC takes (see SpeakOptions.Actions): after its speech,
        /// once the reply is stored, before OnCompleted.</summary>
        public event Action<NpcAction> OnAction;
        /// <summary>The whole reply, when it is done and stored.</summary>
        public event Action<FinalReply> OnCompleted;
        /// <summary>The reply failed or was cancelled (Code CANCELLED).</summary>
        public event Action<NpcRuntimeException> OnError;

        /// <summary>The bridge call id (used by <see cref="Cancel"/>).</summary>
        public string CallId { get; private set; }
        public string NpcId { get; private set; }
        public string SessionId { get; private set; }
        /// <summary>The daemon's request id, once the reply has started.</summary>
        public string RequestId { get; private set; }
        /// <summary>The NPC's display name, once the reply has started.</summary>
        public string NpcName { get; private set; }
        /// <summary>The text streamed so far.</summary>
        public string Text { get { return text.ToString(); } }
        public List<Sentence> Sentences { get; private set; } = new List<Sentence>();
        /// <summary>The actions the reply carries, as they arrive.</summary>
        public List<NpcAction> Actions { get; private set; } = new List<NpcAction>();
        public bool IsDone { get; private set; }
        public FinalReply Final { get; private set; }
        public NpcRuntimeException Error { get; private set; }
        /// <summary>Completes with the final reply, or fails with an NpcRuntimeException.</summary>
        public Task<FinalReply> Task { get { return completion.Task; } }

        /// <summary>Stops the reply before its next token; it ends with an error CANCELLED and stores nothing.</summary>
        public void Cancel()
        {
            if (!IsDone) client.CancelCall(CallId);
        }

        internal void HandleEvent(SpeakEvent ev)
        {
            if (ev.Started != null)
            {
                RequestId = ev.Started.RequestId;
                NpcName = ev.Started.NpcName;
            }
            else if (ev.Token != null)
            {
                text.Append(ev.Token.Text);
                var h = OnToken; if (h != null) h(ev.Token.Text);
            }
            else if (ev.Sentence != null)
            {
                Sentences.Add(ev.Sentence);
                var h = OnSentence; if (h != null) h(ev.Sentence);
            }
            else if (ev.Action != null)
            {
                Actions.Add(ev.Action);
                var h = OnAction; if (h != null) h(ev.Action);
            }
            else if (ev.Final != null)
            {
                Final = ev.Final;
            }
        }

        internal void HandleDone(NpcRuntimeException error)
        {
            if (IsDone) return;
            if (error == null && Final == null)
                error = new NpcRuntimeException("INTERNAL", "the reply ended without a final event");
            Error = error;
            IsDone = true;
            if (error != null)
            {
                var h = OnError; if (h != null) h(error);
                completion.TrySetException(error);
            }
            else
            {
                var h = OnCompleted; if (h != null) h(Final);
                completion.TrySetResult(Final);
            }
        }

        // IEnumerator: a coroutine that yields this waits until the reply is done.
        object IEnumerator.Current { get { return null; } }
        bool IEnumerator.MoveNext() { return !IsDone; }
        void IEnumerator.Reset() { }
    }

    /// <summary>Waits in a coroutine for a task: <c>yield return new WaitForTask(client.ListNpcs());</c></summary>
    public sealed class WaitForTask : IEnumerator
    {
        readonly Task task;
        public WaitForTask(Task task) { this.task = task; }
        public object Current { get { return null; } }
        public bool MoveNext() { return !task.IsCompleted; }
        public void Reset() { }
    }
}
