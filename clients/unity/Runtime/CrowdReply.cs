using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;

namespace NpcRuntime
{
    /// <summary>
    /// A call in which several NPC replies stream (React, Converse): a
    /// <see cref="SpeakReply"/> per reply with its own events, and the call's end.
    /// Yield it in a coroutine, await <see cref="Task"/>, or subscribe. Events change on
    /// the client's dispatcher.
    /// </summary>
    public abstract class ManyReplies<TDone> : IEnumerator where TDone : class
    {
        readonly TaskCompletionSource<TDone> completion = new TaskCompletionSource<TDone>();
        internal readonly NpcRuntimeClient Client;

        internal ManyReplies(NpcRuntimeClient client, string callId, string sessionId)
        {
            Client = client;
            CallId = callId;
            SessionId = sessionId;
        }

        /// <summary>The call is over: every reply stored (or, for a scene, the turns so far).</summary>
        public event Action<TDone> OnCompleted;
        public event Action<NpcRuntimeException> OnError;

        public string CallId { get; private set; }
        public string SessionId { get; private set; }
        /// <summary>The replies, in the order they are stored.</summary>
        public List<SpeakReply> Replies { get; } = new List<SpeakReply>();
        public bool IsDone { get; private set; }
        public TDone Done { get; protected set; }
        public NpcRuntimeException Error { get; private set; }
        /// <summary>Completes with the call's Done event, or fails with an NpcRuntimeException.</summary>
        public Task<TDone> Task { get { return completion.Task; } }

        /// <summary>Stops the call; what it had not stored is not stored.</summary>
        public void Cancel()
        {
            if (!IsDone) Client.CancelCall(CallId);
        }

        /// <summary>One event of one reply; the reply completes on its Final.</summary>
        internal static void Deliver(SpeakReply reply, Started started, TokenDelta token, Sentence sentence, FinalReply final,
                                     NpcAction action = null)
        {
            reply.HandleEvent(new SpeakEvent { Started = started, Token = token, Sentence = sentence, Final = final, Action = action });
            if (final != null) reply.HandleDone(null);
        }

        internal void HandleDone(NpcRuntimeException error)
        {
            if (IsDone) return;
            if (error == null && Done == null)
                error = new NpcRuntimeException("INTERNAL", "the call ended without a done event");
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

    /// <summary>
    /// One React call: several NPCs answering one line. <see cref="ManyReplies{T}.Replies"/>
    /// holds a reply per NPC, in the order asked; each completes when the replies are stored.
    /// </summary>
    public sealed class CrowdReply : ManyReplies<ReactDone>
    {
        internal CrowdReply(NpcRuntimeClient client, string callId, List<string> npcIds, string sessionId)
            : base(client, callId, sessionId)
        {
            Replies.AddRange(npcIds.Select(npc => new SpeakReply(client, callId, npc, sessionId)));
        }

        /// <summary>The reply of one NPC of the call (null if it was not asked).</summary>
        public SpeakReply this[string npcId] { get { return Replies.FirstOrDefault(r => r.NpcId == npcId); } }

        internal void HandleEvent(ReactEvent ev)
        {
            if (ev == null) return;
            if (ev.Done != null)
            {
                Done = ev.Done;
                return;
            }
            var reply = this[ev.NpcId];
            if (reply != null) Deliver(reply, ev.Started, ev.Token, ev.Sentence, ev.Reply, ev.Action);
        }
    }

    /// <summary>
    /// One Converse call: NPCs talking among themselves, turn after turn. Each turn is a
    /// reply of its own in <see cref="ManyReplies{T}.Replies"/>, announced by OnTurn, and
    /// stored as soon as it is complete.
    /// </summary>
    public sealed class SceneReply : ManyReplies<ConverseDone>
    {
        internal SceneReply(NpcRuntimeClient client, string callId, string sessionId) : base(client, callId, sessionId) { }

        /// <summary>A turn begins: subscribe to its reply's events.</summary>
        public event Action<SpeakReply> OnTurn;

        internal void HandleEvent(ConverseEvent ev)
        {
            if (ev == null) return;
            if (ev.Done != null)
            {
                Done = ev.Done;
                return;
            }
            if (ev.Started != null && ev.Turn == Replies.Count)
            {
                var turn = new SpeakReply(Client, CallId, ev.NpcId, SessionId);
                Replies.Add(turn);
                var h = OnTurn; if (h != null) h(turn);
            }
            if (ev.Turn < Replies.Count) Deliver(Replies[(int)ev.Turn], ev.Started, ev.Token, ev.Sentence, ev.Reply);
        }
    }
}
