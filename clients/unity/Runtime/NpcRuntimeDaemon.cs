using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace NpcRuntime
{
    /// <summary>How to start the daemon: a bundle's command (<see cref="FromBundle"/>) or any other.</summary>
    public sealed class DaemonOptions
    {
        /// <summary>The daemon executable (a bundle's daemon/npc-runtime[.exe], or an installed npc-runtime).</summary>
        public string Executable = "";
        /// <summary>Its arguments before the ones added here (such as serve --cast cast --base model).</summary>
        public List<string> Arguments = new List<string> { "serve" };
        /// <summary>Where it runs; a bundle's paths are relative to the bundle folder.</summary>
        public string WorkingDirectory = "";
        /// <summary>Sessions and locks (--data-dir); empty: the daemon's default.</summary>
        public string DataDirectory = "";
        /// <summary>0: a free port each start (the ready event says which).</summary>
        public int Port;
        public int BridgePort;
        /// <summary>Handed over in the environment (NPC_RUNTIME_TOKEN), never on the command line.</summary>
        public string Token;
        /// <summary>Restarts after the daemon dies unexpectedly, over this object's life.</summary>
        public int MaxRestarts = 3;
        /// <summary>The first wait before a restart; each next one doubles.</summary>
        public TimeSpan RestartDelay = TimeSpan.FromSeconds(1);
        /// <summary>How long a start may take before it counts as failed (loading a model takes a while).</summary>
        public TimeSpan ReadyTimeout = TimeSpan.FromMinutes(3);

        /// <summary>
        /// The options of a folder written by <c>npc-runtime bundle</c>: its bundle.json
        /// command, with the folder's absolute path for "{bundle}", run in the folder.
        /// </summary>
        public static DaemonOptions FromBundle(string bundleDirectory)
        {
            string path = Path.Combine(bundleDirectory, "bundle.json");
            if (!File.Exists(path))
                throw new NpcRuntimeException("NOT_FOUND", "no npc-runtime bundle at " + bundleDirectory + " (bundle.json is missing)");
            string root = Path.GetFullPath(bundleDirectory);
            var command = JsonExt.AsList((Json.Parse(File.ReadAllText(path)) as Dictionary<string, object>).Get("command"))
                .Select(arg => JsonExt.AsString(arg).Replace("{bundle}", root)).ToList();
            if (command.Count == 0)
                throw new NpcRuntimeException("INVALID_ARGUMENT", path + " has no command");
            string exe = Path.GetFullPath(command[0]);
            if (!File.Exists(exe) && File.Exists(exe + ".exe")) exe += ".exe";
            return new DaemonOptions { Executable = exe, Arguments = command.Skip(1).ToList(), WorkingDirectory = root };
        }
    }

    /// <summary>The daemon's readiness line: where it listens and what it serves.</summary>
    public sealed class DaemonInfo
    {
        public int Pid;
        public string Version = "";
        public string Host = "";
        public int Port;
        public int BridgePort;
        public int NpcCount;
        public string DataDirectory = "";
        /// <summary>The bridge, for <see cref="NpcRuntimeClient"/>.</summary>
        public string BridgeUrl { get { return "ws://" + Host + ":" + BridgePort; } }

        internal static DaemonInfo FromJson(Dictionary<string, object> obj)
        {
            return new DaemonInfo
            {
                Pid = obj.Int("pid"), Version = obj.Str("version"), Host = obj.Str("host"), Port = obj.Int("port"),
                BridgePort = obj.Int("bridge_port"), NpcCount = obj.Int("npc_count"), DataDirectory = obj.Str("data_dir"),
            };
        }
    }

    /// <summary>
    /// The daemon as a child process of the game: started on free ports, ready once its
    /// readiness line says so, restarted a bounded number of times if it dies, and stopped
    /// cleanly by closing its standard input (on every OS; it also stops when the game's
    /// process ends, crash or not). Events run on the dispatcher given to the constructor.
    /// </summary>
    public sealed class NpcRuntimeDaemon : IDisposable
    {
        readonly DaemonOptions options;
        readonly IMainThreadDispatcher dispatcher;
        readonly object gate = new object();
        readonly Queue<string> recentLog = new Queue<string>();
        Process process;
        TaskCompletionSource<DaemonInfo> starting;
        bool stopping;
        int restarts;

        public NpcRuntimeDaemon(DaemonOptions options, IMainThreadDispatcher dispatcher = null)
        {
            this.options = options ?? throw new ArgumentNullException("options");
            this.dispatcher = dispatcher ?? ImmediateDispatcher.Instance;
        }

        /// <summary>The daemon serves (after its first start and after each restart).</summary>
        public event Action<DaemonInfo> OnReady;
        /// <summary>The daemon died; the flag says whether it will be restarted.</summary>
        public event Action<int, bool> OnExited;
        /// <summary>It could not start, or died once too often: the daemon's error code
        /// (model_missing, data_dir_locked, ...) or "exited", and why.</summary>
        public event Action<NpcRuntimeException> OnFailed;
        /// <summary>One line of the daemon's log (stderr), on the reading thread.</summary>
        public event Action<string> OnLog;

        /// <summary>The latest readiness, or null while it is not serving.</summary>
        public DaemonInfo Info { get; private set; }
        public bool IsRunning { get { lock (gate) return process != null; } }
        /// <summary>Restarts so far.</summary>
        public int Restarts { get { return restarts; } }

        /// <summary>Starts the daemon; completes when it serves, or fails with its error code.</summary>
        public Task<DaemonInfo> Start()
        {
            lock (gate)
            {
                if (process != null) return starting.Task;
                stopping = false;
                return Launch();
            }
        }

        /// <summary>
        /// Stops the daemon: closes its standard input, waits up to <paramref name="grace"/>
        /// (default 10 s) for a clean exit, then kills it. Returns its exit code.
        /// </summary>
        public int Stop(TimeSpan? grace = null)
        {
            Process p;
            lock (gate)
            {
                stopping = true;
                p = process;
            }
            if (p == null) return 0;
            try { p.StandardInput.Close(); } catch (Exception) { }
            if (!p.WaitForExit((int)(grace ?? TimeSpan.FromSeconds(10)).TotalMilliseconds))
            {
                try { p.Kill(); } catch (Exception) { }
                p.WaitForExit();
            }
            lock (gate) if (process == p) process = null;
            return p.ExitCode;
        }

        /// <summary>Kills the daemon at once, as a crash would (for tests and watchdogs): it restarts if allowed.</summary>
        public void Kill()
        {
            Process p;
            lock (gate) p = process;
            if (p != null) { try { p.Kill(); } catch (Exception) { } }
        }

        public void Dispose() { Stop(); }

        // Called with gate held.
        Task<DaemonInfo> Launch()
        {
            var args = new List<string>(options.Arguments)
            {
                "--port", options.Port.ToString(), "--bridge-port", options.BridgePort.ToString(),
                "--parent-pid", Process.GetCurrentProcess().Id.ToString(), "--stop-on-stdin-close",
            };
            if (!string.IsNullOrEmpty(options.DataDirectory)) { args.Add("--data-dir"); args.Add(options.DataDirectory); }
            var info = new ProcessStartInfo(options.Executable, string.Join(" ", args.Select(Quote)))
            {
                UseShellExecute = false, CreateNoWindow = true, RedirectStandardInput = true,
                RedirectStandardOutput = true, RedirectStandardError = true,
                StandardOutputEncoding = Encoding.UTF8, StandardErrorEncoding = Encoding.UTF8,
            };
            if (!string.IsNullOrEmpty(options.WorkingDirectory)) info.WorkingDirectory = options.WorkingDirectory;
            if (!string.IsNullOrEmpty(options.Token)) info.EnvironmentVariables["NPC_RUNTIME_TOKEN"] = options.Token;
            starting = new TaskCompletionSource<DaemonInfo>();
            var started = starting;
            Process p;
            try
            {
                p = Process.Start(info);
            }
            catch (Exception exc)
            {
                var error = new NpcRuntimeException("NOT_FOUND", "cannot start the npc-runtime daemon " + options.Executable + ": " + exc.Message, exc);
                started.TrySetException(error);
                dispatcher.Post(() => { var h = OnFailed; if (h != null) h(error); });
                return started.Task;
            }
            process = p;
            new Thread(() => ReadLog(p)) { IsBackground = true, Name = "npc-runtime stderr" }.Start();
            new Thread(() => Watch(p, started)) { IsBackground = true, Name = "npc-runtime stdout" }.Start();
            var timer = new Timer(_ =>
            {
                if (started.Task.IsCompleted) return;
                Fail(started, new NpcRuntimeException("DEADLINE_EXCEEDED", "the daemon was not ready after " + options.ReadyTimeout.TotalSeconds + " s" + LogTail()));
                try { p.Kill(); } catch (Exception) { }
            }, null, options.ReadyTimeout, Timeout.InfiniteTimeSpan);
            started.Task.ContinueWith(_ => timer.Dispose());
            return started.Task;
        }

        void ReadLog(Process p)
        {
            string line;
            while ((line = p.StandardError.ReadLine()) != null)
            {
                lock (recentLog)
                {
                    recentLog.Enqueue(line);
                    while (recentLog.Count > 20) recentLog.Dequeue();
                }
                var h = OnLog; if (h != null) h(line);
            }
        }

        // The first line of stdout is the readiness or the start-up error; then wait for the end.
        void Watch(Process p, TaskCompletionSource<DaemonInfo> started)
        {
            string line = p.StandardOutput.ReadLine();
            Dictionary<string, object> record = null;
            try { record = line == null ? null : Json.Parse(line) as Dictionary<string, object>; }
            catch (FormatException) { }
            bool ready = record != null && record.Str("event") == "ready";
            if (ready)
            {
                var daemon = DaemonInfo.FromJson(record);
                Info = daemon;
                if (started.TrySetResult(daemon)) dispatcher.Post(() => { var h = OnReady; if (h != null) h(daemon); });
            }
            while (p.StandardOutput.ReadLine() != null) { }
            p.WaitForExit();
            int code = p.ExitCode;
            Info = null;
            bool restart;
            lock (gate)
            {
                if (process == p) process = null;
                restart = ready && !stopping && restarts < options.MaxRestarts;
                if (restart) restarts++;
            }
            if (!ready)
            {
                var error = record != null && record.Str("event") == "error"
                    ? new NpcRuntimeException(record.Str("code"), record.Str("message"))
                    : new NpcRuntimeException("exited", "the daemon exited with status " + code + " before it was ready" + LogTail());
                Fail(started, error);
                return;
            }
            bool stopped;
            lock (gate) stopped = stopping;
            dispatcher.Post(() => { var h = OnExited; if (h != null) h(code, restart); });
            if (stopped) return;
            if (!restart)
            {
                Fail(null, new NpcRuntimeException("exited", "the daemon exited with status " + code + " and was restarted " + restarts + " times already" + LogTail()));
                return;
            }
            var delay = TimeSpan.FromTicks(options.RestartDelay.Ticks << Math.Min(restarts - 1, 5));
            Thread.Sleep(delay);
            Task<DaemonInfo> next;
            lock (gate)
            {
                if (stopping || process != null) return;
                next = Launch();
            }
            next.ContinueWith(t => { var ignored = t.Exception; });  // failures reach OnFailed
        }

        void Fail(TaskCompletionSource<DaemonInfo> started, NpcRuntimeException error)
        {
            if (started != null && !started.TrySetException(error)) return;
            dispatcher.Post(() => { var h = OnFailed; if (h != null) h(error); });
        }

        string LogTail()
        {
            lock (recentLog) return recentLog.Count == 0 ? "" : "; its log ends: " + string.Join(" | ", recentLog.Skip(Math.Max(0, recentLog.Count - 3)));
        }

        /// <summary>One argument as the C runtime (Windows) and Mono split a command line.</summary>
        internal static string Quote(string arg)
        {
            if (arg.Length > 0 && arg.IndexOfAny(new[] { ' ', '\t', '\n', '\v', '"' }) < 0) return arg;
            var sb = new StringBuilder("\"");
            int slashes = 0;
            foreach (char c in arg)
            {
                if (c == '\\') { slashes++; continue; }
                sb.Append('\\', c == '"' ? slashes * 2 + 1 : slashes);
                slashes = 0;
                sb.Append(c);
            }
            sb.Append('\\', slashes * 2);
            return sb.Append('"').ToString();
        }
    }
}
