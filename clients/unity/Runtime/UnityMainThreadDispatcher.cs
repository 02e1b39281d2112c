#if UNITY_5_3_OR_NEWER
using System;
using UnityEngine;

namespace NpcRuntime
{
    /// <summary>
    /// Runs the client's callbacks on Unity's main thread, in Update. Add it to a GameObject
    /// or use <see cref="Create"/>: <c>new NpcRuntimeClient(url, UnityMainThreadDispatcher.Create())</c>.
    /// </summary>
    public sealed class UnityMainThreadDispatcher : MonoBehaviour, IMainThreadDispatcher
    {
        readonly QueueDispatcher queue = new QueueDispatcher();

        /// <summary>A dispatcher on a hidden GameObject that survives scene loads.</summary>
        public static UnityMainThreadDispatcher Create()
        {
            var go = new GameObject("NpcRuntimeMainThreadDispatcher");
            go.hideFlags = HideFlags.HideInHierarchy;
            DontDestroyOnLoad(go);
            return go.AddComponent<UnityMainThreadDispatcher>();
        }

        public void Post(Action action) { queue.Post(action); }

        void Update()
        {
            queue.RunPending();
        }
    }
}
#endif
