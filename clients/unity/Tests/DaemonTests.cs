using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace NpcRuntime.Tests
{
    /// <summary>
    /// The game owns the daemon's life (what NpcRuntimeServer does in a scene): a real
    /// daemon process started on free ports, killed, restarted, stopped. NPC_RUNTIME_EXE
    /// names the npc-runtime command (run_tests.sh sets it); without it these are ignored.
    /// </summary>
    public class DaemonTests
    {
        static readonly TimeSpan Wait = TimeSpan.FromSeconds(180);
        string work;

        [SetUp]
        public void SetUp()
        {
            if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NPC_RUNTIME_EXE")))
                Assert.Ignore("NPC_RUNTIME_EXE is not set (run clients/unity/run_tests.sh)");
            work = Path.Combine(Path.GetTempPath(), "npc-runtime-unity-" + Guid.NewGuid().ToString("N").Substring(0, 8));
            Directory.CreateDirectory(work);
        }

        [TearDown]
        public void TearDown()
        {
            if (work != null && Directory.Exists(work)) Directory.Delete(work, true);
        }

        DaemonOptions Options(string dataDir, params string[] extra)
        {
            var args = new List<string> { "serve" };
            args.AddRange(extra);
            return new DaemonOptions
            {
                Executable = Environment.GetEnvironmentVariable("NPC_RUNTIME_EXE"),
                Arguments = args, DataDirectory = dataDir, RestartDelay = TimeSpan.FromMilliseconds(100),
            };
        }

        static T Result<T>(Task<T> task)
        {
            Assert.IsTrue(task.Wait(Wait), "no answer in time");
            return task.Result;
        }

        // Mono's HasExited cannot tell for a process it did not start: ask /proc where there is one.
        static bool Alive(int pid)
        {
            if (Directory.Exists("/proc/self")) return File.Exists("/proc/" + pid + "/stat") && !File.ReadAllText("/proc/" + pid + "/stat").Contains(") Z ");
            try { return !Process.GetProcessById(pid).HasExited; }
            catch (ArgumentException) { return false; }
        }

        [Test]
        public void StartsOnFreePortsRestartsAfterACrashAndStopsCleanly()
        {
            // A path with a space and a quote: the arguments reach the daemon whole.
            string data = Path.Combine(work, "save data \"1\"");
            var readies = new List<DaemonInfo>();
            var exits = new List<bool>();
            using (var daemon = new NpcRuntimeDaemon(Options(data)))
            {
                var restarted = new ManualResetEventSlim();
                daemon.OnReady += info => { lock (readies) { readies.Add(info); if (readies.Count == 2) restarted.Set(); } };
                daemon.OnExited += (code, willRestart) => { lock (exits) exits.Add(willRestart); };

                var first = Result(daemon.Start());
                Assert.Greater(first.BridgePort, 0);
                Assert.Greater(first.Port, 0);
                Assert.AreEqual(Path.GetFullPath(data), Path.GetFullPath(first.DataDirectory));
                Assert.IsTrue(Directory.Exists(data));
                using (var client = new NpcRuntimeClient(first.BridgeUrl))
                {
                    Assert.AreEqual(first.NpcCount, Result(client.ListNpcs()).Count);
                    var reply = client.Speak("brann", "Can you mend my sword?", "save1", new SpeakOptions { MaxTokens = 4, Seed = 1 });
                    Assert.IsTrue(Result(reply.Task).Stored);
                }

                daemon.Kill();  // as a crash would
                Assert.IsTrue(restarted.Wait(Wait), "the daemon was not restarted");
                var second = readies[1];
                Assert.AreNotEqual(first.Pid, second.Pid);
                Assert.IsFalse(Alive(first.Pid), "the crashed daemon is gone");
                CollectionAssert.AreEqual(new[] { true }, exits);
                Assert.AreEqual(1, daemon.Restarts);
                using (var client = new NpcRuntimeClient(second.BridgeUrl))
                {
                    var session = Result(client.GetSession("save1"));
                    Assert.AreEqual(2, session.TurnCount, "the stored exchange survives the crash");
                }

                Assert.AreEqual(0, daemon.Stop(), "a clean exit when its input closes");
                Assert.IsFalse(daemon.IsRunning, "IsRunning after Stop");
                Assert.IsFalse(Alive(second.Pid), "the stopped daemon is gone");
                Assert.AreEqual(2, readies.Count, "a stopped daemon is not restarted");
            }
        }

        [Test]
        public void GivesUpAfterItsRestartsAreSpent()
        {
            var failed = new ManualResetEventSlim();
            NpcRuntimeException error = null;
            var options = Options(Path.Combine(work, "data"), "--no-bridge");
            options.MaxRestarts = 0;
            using (var daemon = new NpcRuntimeDaemon(options))
            {
                daemon.OnFailed += e => { error = e; failed.Set(); };
                var info = Result(daemon.Start());
                daemon.Kill();
                Assert.IsTrue(failed.Wait(Wait), "no OnFailed");
                Assert.AreEqual("exited", error.Code);
                StringAssert.Contains("restarted 0 times", error.Message);
                Assert.IsFalse(daemon.IsRunning, "IsRunning after giving up");
                Assert.IsFalse(Alive(info.Pid), "the killed daemon is gone");
            }
        }

        [Test]
        public void AStartUpErrorFailsTheStartWithItsCode()
        {
            var options = Options(Path.Combine(work, "data"), "--no-bridge", "--base", Path.Combine(work, "no-such-model"));
            using (var daemon = new NpcRuntimeDaemon(options))
            {
                var start = daemon.Start();
                var agg = Assert.Throws<AggregateException>(() => start.Wait(Wait));
                var error = agg.GetBaseException() as NpcRuntimeException;
                Assert.IsNotNull(error, agg.GetBaseException().ToString());
                Assert.AreEqual("model_missing", error.Code);
                Assert.AreEqual(0, daemon.Restarts, "a start-up error is not retried: it would fail again");
            }
        }

        [Test]
        public void ReadsABundlesCommand()
        {
            string bundle = Path.Combine(work, "bundle");
            Directory.CreateDirectory(Path.Combine(bundle, "daemon"));
            File.WriteAllText(Path.Combine(bundle, "daemon", "npc-runtime"), "");
            File.WriteAllText(Path.Combine(bundle, "bundle.json"),
                "{\"command\": [\"{bundle}/daemon/npc-runtime\", \"serve\", \"--cast\", \"{bundle}/cast\"]}");
            var options = DaemonOptions.FromBundle(bundle);
            Assert.AreEqual(Path.GetFullPath(Path.Combine(bundle, "daemon", "npc-runtime")), options.Executable);
            CollectionAssert.AreEqual(new[] { "serve", "--cast", Path.GetFullPath(bundle) + "/cast" }, options.Arguments);
            Assert.AreEqual(Path.GetFullPath(bundle), options.WorkingDirectory);
            var missing = Assert.Throws<NpcRuntimeException>(() => DaemonOptions.FromBundle(work));
            Assert.AreEqual("NOT_FOUND", missing.Code);
        }
    }
}
