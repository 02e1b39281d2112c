using System;
using System.Collections.Generic;
using System.Threading;

namespace NpcRuntime
{
    /// <summary>
    /// Where the client runs its callbacks (events, IsDone, task completion). In Unity use
    /// <c>UnityMainThreadDispatcher</c>, which runs them on the main thread in Update.
    /// </summary>
    public interface IMainThreadDispatcher
    {
        void Post(Action action);
    }

    /// <summary>Runs callbacks at once on the socket's thread (tools, tests, servers).</summary>
    public sealed class ImmediateDispatcher : IMainThreadDispatcher
    {
        public static readonly ImmediateDispatcher Instance = new ImmediateDispatcher();
        public void Post(Action action) { action(); }
    }

    /// <summary>
    /// Queues callbacks until <see cref="RunPending"/> is called from the thread that owns
    /// them (a game loop's update). The Unity dispatcher is this, pumped in Update.
    /// </summary>
    public sealed class QueueDispatcher : IMainThreadDispatcher
    {
        readonly Queue<Action> queue = new Queue<Action>();

        public void Post(Action action)
        {
            lock (queue) queue.Enqueue(action);
        }

        /// <summary>Runs the callbacks queued so far; returns how many ran.</summary>
        public int RunPending()
        {
            int ran = 0;
            while (true)
            {
                Action next;
                lock (queue)
                {
                    if (queue.Count == 0) return ran;
                    next = queue.Dequeue();
                }
                next();
                ran++;
            }
        }
    }
}
