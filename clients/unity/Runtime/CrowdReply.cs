using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;

namespace NpcRuntime
{
    /// <summary>
    /// One React call in flight: several NPCs answering one line. <see cref="Replies"/>
    /// holds a <see cref="SpeakReply"/> per NPC (in the order asked) with its own events;
    /// each completes when its reply is stored. Yield this in a coroutine, await
    /// <see cref="Task"/>, or subscribe. Events change on the client's dispatcher.
    /// </summary>
    public sealed class CrowdReply : IEnumerator
    {
        readonly NpcRuntimeClient client;
        readonly TaskCompletionSource<ReactDone> completion = new TaskCompletionSource<ReactDone>();

        internal CrowdReply(NpcRuntimeClient client, string callId, List<string> npcIds, string sessionId)
        {
            this.client = client;
            CallId = callId;
            Replies = npcIds.Select(npc => new SpeakReply(client, callId, npc, sessionId)).ToList();
        }

        /// <summary>Every reply is stored (Done), or the call failed.</summary>
        public event Action<ReactDone> OnCompleted;
        public event Action<NpcRuntimeException> OnError;

        public string CallId { get; private set; }
        /// <summary>A reply per NPC, in the order of the npcIds asked.</summary>
        public List<SpeakReply> Replies { get; private set; }
        public bool IsDone { get; private set; }
        public ReactDone Done { get; private set; }
        public NpcRuntimeException Error { get; private set; }
        /// <summary>Completes with Done, or fails with an NpcRuntimeException.</summary>
        public Task<ReactDone> Task { get { return completion.Task; } }

        /// <summary>The reply of one NPC of the call (null if it was not asked).</summary>
        public SpeakReply this[string npcId] { get { return Replies.FirstOrDefault(r => r.NpcId == npcId); } }

        /// <summary>Stops every reply of the call; nothing is stored.</summary>
        public void Cancel()
        {
            if (!IsDone) client.CancelCall(CallId);
        }

        internal void HandleEvent(ReactEvent ev)
        {
            if (ev == null) return;
            if (ev.Done != null)
            {
                Done = ev.Done;
                return;
            }
            var reply = this[ev.NpcId];
            if (reply == null) return;
            reply.HandleEvent(new SpeakEvent { Started = ev.Started, Token = ev.Token, Sentence = ev.Sentence, Final = ev.Reply });
            if (ev.Reply != null) reply.HandleDone(null);
        }

        internal void HandleDone(NpcRuntimeException error)
        {
            if (IsDone) return;
            if (error == null && Done == null)
                error = new NpcRuntimeException("INTERNAL", "the reaction ended without a done event");
            foreach (var reply in Replies) reply.HandleDone(error);
            Error = error;
            IsDone = true;
            if (error != null)
            {
                var h = OnError; if (h != null) h(error);
                completion.TrySetException(error);
            }
            else
            {
                var h = OnCompleted; if (h != null) h(Done);
                completion.TrySetResult(Done);
            }
        }

        object IEnumerator.Current { get { return null; } }
        bool IEnumerator.MoveNext() { return !IsDone; }
        void IEnumerator.Reset() { }
    }
}
