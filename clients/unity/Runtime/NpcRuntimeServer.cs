#if UNITY_5_3_OR_NEWER
using System;
using System.Collections.Generic;
using System.IO;
using UnityEngine;
using UnityEngine.Events;

namespace NpcRuntime
{
    /// <summary>A daemon failure for the inspector: its code (model_missing, exited, ...) and message.</summary>
    [Serializable]
    public class NpcRuntimeFailedEvent : UnityEvent<string, string> { }

    /// <summary>
    /// The model host of a scene, the way LLMUnity's LLM is: starts the bundled daemon
    /// (a folder written by <c>npc-runtime bundle</c>, under StreamingAssets or at a path),
    /// waits for its readiness, restarts it a bounded number of times if it dies, and stops
    /// it when the application quits. Its <see cref="Client"/> talks to it; NpcVoice
    /// components speak through it. The process logic is <see cref="NpcRuntimeDaemon"/>.
    /// </summary>
    [DisallowMultipleComponent]
    public sealed class NpcRuntimeServer : MonoBehaviour
    {
        [Tooltip("The bundle folder: relative to StreamingAssets, or absolute")]
        public string bundlePath = "npc-runtime";
        [Tooltip("Sessions and locks; empty: Application.persistentDataPath/npc-runtime")]
        public string dataDirectory = "";
        [Tooltip("Extra daemon options, such as --device cuda")]
        public string[] extraArguments = new string[0];
        [Tooltip("Restarts after the daemon dies, over this component's life")]
        public int maxRestarts = 3;
        [Tooltip("Only needed when other programs must not talk to the daemon")]
        public string token = "";
        public bool startOnAwake = true;
        [Tooltip("Copy the daemon's log to the Unity console")]
        public bool logDaemonOutput;
        public UnityEvent onReady = new UnityEvent();
        public NpcRuntimeFailedEvent onFailed = new NpcRuntimeFailedEvent();

        readonly List<KeyValuePair<Action, Action<NpcRuntimeException>>> waiting =
            new List<KeyValuePair<Action, Action<NpcRuntimeException>>>();
        NpcRuntimeDaemon daemon;
        UnityMainThreadDispatcher dispatcher;

        /// <summary>The client of the running daemon; null until it is first ready.</summary>
        public NpcRuntimeClient Client { get; private set; }
        public bool IsReady { get; private set; }
        /// <summary>Ports, pid and NPC count of the running daemon; null while it is not serving.</summary>
        public DaemonInfo Info { get { return daemon == null ? null : daemon.Info; } }

        /// <summary>The scene's server (the first one found).</summary>
        public static NpcRuntimeServer Find() { return FindObjectOfType<NpcRuntimeServer>(); }

        void Awake()
        {
            dispatcher = UnityMainThreadDispatcher.Create();
            if (startOnAwake) StartDaemon();
        }

        /// <summary>Starts the daemon (Awake does, unless startOnAwake is off).</summary>
        public void StartDaemon()
        {
            if (daemon != null) return;
            if (dispatcher == null) dispatcher = UnityMainThreadDispatcher.Create();
            DaemonOptions options;
            try
            {
                string folder = Path.IsPathRooted(bundlePath) ? bundlePath : Path.Combine(Application.streamingAssetsPath, bundlePath);
                options = DaemonOptions.FromBundle(folder);
            }
            catch (NpcRuntimeException error)
            {
                Failed(error);
                return;
            }
            options.Arguments.AddRange(extraArguments);
            options.DataDirectory = string.IsNullOrEmpty(dataDirectory)
                ? Path.Combine(Application.persistentDataPath, "npc-runtime") : dataDirectory;
            options.MaxRestarts = maxRestarts;
            options.Token = token;
            daemon = new NpcRuntimeDaemon(options, dispatcher);
            daemon.OnReady += Ready;
            daemon.OnExited += (code, restart) =>
            {
                IsReady = false;
                Debug.LogWarning("npc-runtime: the daemon exited with status " + code + (restart ? "; restarting it" : ""));
            };
            daemon.OnFailed += Failed;
            daemon.OnLog += line => { if (logDaemonOutput) Debug.Log("npc-runtime: " + line); };
            daemon.Start();
        }

        /// <summary>Runs <paramref name="ready"/> once the daemon serves (now, if it does), or
        /// <paramref name="failed"/> if it cannot start.</summary>
        public void WhenReady(Action ready, Action<NpcRuntimeException> failed)
        {
            if (IsReady) ready();
            else waiting.Add(new KeyValuePair<Action, Action<NpcRuntimeException>>(ready, failed));
        }

        /// <summary>Stops the daemon cleanly (OnApplicationQuit does).</summary>
        public void StopDaemon()
        {
            IsReady = false;
            if (daemon != null) daemon.Stop();
            daemon = null;
            if (Client != null) Client.Dispose();
            Client = null;
        }

        void Ready(DaemonInfo info)
        {
            if (Client == null) Client = new NpcRuntimeClient(info.BridgeUrl, dispatcher, token);
            else Client.Url = info.BridgeUrl;
            IsReady = true;
            var now = waiting.ToArray();
            waiting.Clear();
            foreach (var w in now) w.Key();
            onReady.Invoke();
        }

        void Failed(NpcRuntimeException error)
        {
            IsReady = false;
            Debug.LogError("npc-runtime: " + error.Code + ": " + error.Message);
            var now = waiting.ToArray();
            waiting.Clear();
            foreach (var w in now) if (w.Value != null) w.Value(error);
            onFailed.Invoke(error.Code, error.Message);
        }

        void OnApplicationQuit() { StopDaemon(); }

        void OnDestroy() { StopDaemon(); }
    }
}
#endif
