using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;

namespace NpcRuntime.Tests
{
    /// <summary>
    /// End to end against a real daemon: NPC_RUNTIME_BRIDGE_URL names its bridge (run_tests.sh
    /// starts one with the demo village cast); without it these tests are ignored.
    /// </summary>
    public class BridgeTests
    {
        static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);
        NpcRuntimeClient client;
        string session;

        static int MaxTokens
        {
            get
            {
                int n;
                return int.TryParse(Environment.GetEnvironmentVariable("NPC_RUNTIME_TEST_MAX_TOKENS"), out n) ? n : 8;
            }
        }

        static SpeakOptions Short { get { return new SpeakOptions { MaxTokens = MaxTokens, Seed = 1 }; } }

        [SetUp]
        public void SetUp()
        {
            var url = Environment.GetEnvironmentVariable("NPC_RUNTIME_BRIDGE_URL");
            if (string.IsNullOrEmpty(url)) Assert.Ignore("NPC_RUNTIME_BRIDGE_URL is not set (run clients/unity/run_tests.sh)");
            client = new NpcRuntimeClient(url);
            session = "unity-" + Guid.NewGuid().ToString("N").Substring(0, 12);
        }

        [TearDown]
        public void TearDown()
        {
            if (client != null) client.Dispose();
        }

        static T Result<T>(Task<T> task)
        {
            Assert.IsTrue(task.Wait(Wait), "no answer in time");
            return task.Result;
        }

        static NpcRuntimeException Failure(Task task)
        {
            var agg = Assert.Throws<AggregateException>(() => task.Wait(Wait));
            var error = agg.GetBaseException() as NpcRuntimeException;
            Assert.IsNotNull(error, "an NpcRuntimeException, not " + agg.GetBaseException());
            return error;
        }

        [Test]
        public void ListsTheVillageCast()
        {
            var ids = Result(client.ListNpcs()).Select(n => n.Profile.Id).ToList();
            CollectionAssert.Contains(ids, "brann");
            CollectionAssert.Contains(ids, "marla");
        }

        [Test]
        public void StreamsAReply()
        {
            var reply = client.Speak("brann", "Can you mend my sword?", session, Short);
            var tokens = new List<string>();
            var sentences = new List<Sentence>();
            FinalReply completed = null;
            reply.OnToken += t => { lock (tokens) tokens.Add(t); };
            reply.OnSentence += s => { lock (sentences) sentences.Add(s); };
            reply.OnCompleted += f => completed = f;
            var final = Result(reply.Task);

            Assert.IsTrue(reply.IsDone);
            Assert.IsFalse(((System.Collections.IEnumerator)reply).MoveNext(), "a coroutine stops waiting");
            Assert.AreSame(final, completed);
            Assert.AreEqual("FINISH_REASON_LENGTH", final.FinishReason);
            Assert.AreEqual(MaxTokens, final.CompletionTokens);
            // The first token alone, later ones merged (the engine's stream interval).
            Assert.That(tokens.Count, Is.InRange(1, MaxTokens));
            Assert.IsTrue(final.Stored);
            Assert.AreEqual(string.Concat(tokens).Trim(), final.Text);
            Assert.AreEqual("Brann Ironhand", reply.NpcName);
            Assert.IsNotEmpty(reply.RequestId);
            for (int i = 0; i < sentences.Count; i++) Assert.AreEqual(i, sentences[i].Index);

            var stored = Result(client.GetSession(session));
            Assert.AreEqual(2, stored.Turns.Count);
            Assert.AreEqual("SPEAKER_KIND_PLAYER", stored.Turns[0].SpeakerKind);
            Assert.AreEqual("Can you mend my sword?", stored.Turns[0].Text);
            Assert.AreEqual("brann", stored.Turns[1].NpcId);
            Assert.AreEqual(final.Text, stored.Turns[1].Text);
        }

        [Test]
        public void TwoNpcsInOneSession()
        {
            var first = Result(client.Speak("brann", "Can you mend my sword?", session, Short).Task);
            var second = Result(client.Speak("marla", "Is he always this grumpy?", session, Short).Task);
            Assert.IsTrue(first.Stored && second.Stored);
            // Marla heard Brann: her prompt holds the whole scene.
            Assert.Greater(second.PromptTokens, 0);

            var turns = Result(client.GetSession(session)).Turns;
            CollectionAssert.AreEqual(new[] { "", "brann", "", "marla" }, turns.Select(t => t.NpcId).ToArray());
            CollectionAssert.AreEqual(new[] { 1, 2, 3, 4 }, turns.Select(t => t.Seq).ToArray());
            Assert.AreEqual("Marla Thistledown", turns[3].SpeakerName);

            Assert.AreEqual(4, Result(client.ResetSession(session)));
            // A reset session is gone.
            Assert.AreEqual("NOT_FOUND", Failure(client.GetSession(session)).Code);
        }

        const string GiveItem = "{\"type\": \"object\", \"properties\": {\"item\": {\"type\": \"string\", "
            + "\"enum\": [\"sword\", \"potion\"]}}, \"required\": [\"item\"], \"additionalProperties\": false}";

        [Test]
        public void AnNpcHandsThePlayerAnItem()
        {
            var options = Short;
            options.Actions = new List<ActionSpec> { SpeakOptions.Action("give_item", "hand the player an item", GiveItem) };
            options.ActionChoice = "give_item";
            var reply = client.Speak("brann", "Can you mend my sword?", session, options);
            var seen = new List<NpcAction>();
            bool completedAfterActions = false;
            reply.OnAction += a => { lock (seen) seen.Add(a); };
            reply.OnCompleted += f => completedAfterActions = seen.Count > 0;
            var final = Result(reply.Task);

            Assert.IsTrue(final.Stored);
            Assert.IsTrue(completedAfterActions, "OnAction comes before OnCompleted");
            Assert.Greater(seen.Count, 0);
            CollectionAssert.AreEqual(seen.Select(a => a.ArgumentsJson).ToArray(), final.Actions.Select(a => a.ArgumentsJson).ToArray());
            foreach (var action in seen)
            {
                Assert.AreEqual("give_item", action.Name);
                var args = Json.Parse(action.ArgumentsJson) as Dictionary<string, object>;
                Assert.IsNotNull(args, action.ArgumentsJson);
                CollectionAssert.Contains(new[] { "sword", "potion" }, args["item"]);
            }
            var turns = Result(client.GetSession(session)).Turns;
            Assert.AreEqual(seen.Count, turns[1].Actions.Count);
        }

        [Test]
        public void ABadActionSchemaIsRefused()
        {
            var options = Short;
            options.Actions = new List<ActionSpec> { SpeakOptions.Action("give_item", "hand over", "[1, 2]") };
            var error = Failure(client.Speak("brann", "Hello", session, options).Task);
            Assert.AreEqual("INVALID_ARGUMENT", error.Code);
        }

        [Test]
        public void SeveralNpcsReactToOneLine()
        {
            var crowd = client.React(new[] { "marla", "brann" }, "A dragon over the hills!", session, Short);
            var tokens = new Dictionary<string, int> { { "marla", 0 }, { "brann", 0 } };
            foreach (var reply in crowd.Replies)
            {
                var npc = reply.NpcId;
                reply.OnToken += t => { lock (tokens) tokens[npc]++; };
            }
            var done = Result(crowd.Task);
            Assert.IsTrue(done.Stored);
            CollectionAssert.AreEqual(new[] { "marla", "brann" }, crowd.Replies.Select(r => r.NpcId).ToArray());
            foreach (var reply in crowd.Replies)
            {
                Assert.IsTrue(reply.IsDone && reply.Final.Stored, reply.NpcId);
                Assert.AreEqual(reply.Text.Trim(), reply.Final.Text, reply.NpcId);
                Assert.Greater(tokens[reply.NpcId], 0, reply.NpcId);
                Assert.AreEqual(reply.NpcId == "marla" ? "Marla Thistledown" : "Brann Ironhand", reply.NpcName);
            }
            var turns = Result(client.GetSession(session)).Turns;
            var expected = new List<string> { "" };
            expected.AddRange(crowd.Replies.Where(r => r.Final.Text != "").Select(r => r.NpcId));
            CollectionAssert.AreEqual(expected, turns.Select(t => t.NpcId).ToArray());
            Assert.AreEqual(expected.Count, done.TurnsStored);
        }

        [Test]
        public void NpcsTalkAmongThemselves()
        {
            var scene = client.Converse(new[] { "brann", "marla" }, "The smith and the innkeeper argue about the price of nails.", session, 3, Short);
            var announced = new List<string>();
            scene.OnTurn += turn => announced.Add(turn.NpcId);
            var done = Result(scene.Task);
            Assert.IsFalse(done.Cancelled);
            CollectionAssert.AreEqual(new[] { "brann", "marla", "brann" }, scene.Replies.Select(r => r.NpcId).ToArray());
            CollectionAssert.AreEqual(new[] { "brann", "marla", "brann" }, announced);
            Assert.IsTrue(scene.Replies.All(r => r.IsDone && r.Final.Stored));
            var turns = Result(client.GetSession(session)).Turns;
            var expected = new List<string> { "" };
            expected.AddRange(scene.Replies.Where(r => r.Final.Text != "").Select(r => r.NpcId));
            CollectionAssert.AreEqual(expected, turns.Select(t => t.NpcId).ToArray());
            Assert.AreEqual(expected.Count, done.TurnsStored);
        }

        [Test]
        public void RegistersAnNpcThenSpeaksWithIt()
        {
            string id = "lyra_" + Guid.NewGuid().ToString("N").Substring(0, 8);
            var profile = new NpcProfile
            {
                Id = id,
                Name = "Lyra the wandering bard",
                Profile = "Lyra is a wandering bard who arrives in Emberfall with a battered lute, a cloak sewn with ribbons from a hundred towns, and a song for every occasion.",
                Style = "She talks in grand, sing-song flourishes and playful bargains, then drops her voice into riddling, moonlit half-prophecies.",
                Greeting = "Ah, a new face by the firelight! Sit, sit, and for one copper I'll sing you a song.",
                Examples = new List<string> { "A ballad of the north road, friend? Three verses for a silver." },
            };
            var npc = Result(client.RegisterNpc(profile));
            Assert.AreEqual(id, npc.Profile.Id);
            Assert.AreEqual("NPC_KIND_FUSED", npc.Kind);
            CollectionAssert.Contains(Result(client.ListNpcs()).Select(n => n.Profile.Id).ToList(), id);

            var reply = client.Speak(id, "Sing me something.", session, Short);
            var final = Result(reply.Task);
            Assert.AreEqual("Lyra the wandering bard", reply.NpcName);
            Assert.AreEqual(MaxTokens, final.CompletionTokens);

            var again = Failure(client.RegisterNpc(profile));
            Assert.AreEqual("ALREADY_EXISTS", again.Code);
        }

        [Test]
        public void CancelsAReply()
        {
            var reply = client.Speak("brann", "Tell me the whole history of Emberfall.", session,
                new SpeakOptions { MaxTokens = 1000, Seed = 3 });
            NpcRuntimeException seen = null;
            reply.OnError += e => seen = e;
            var deadline = DateTime.UtcNow + Wait;
            while (reply.Text.Length == 0 && !reply.IsDone && DateTime.UtcNow < deadline) System.Threading.Thread.Sleep(10);
            Assert.IsFalse(reply.IsDone, "still streaming when cancelled");
            reply.Cancel();

            var error = Failure(reply.Task);
            Assert.AreEqual("CANCELLED", error.Code);
            Assert.AreSame(error, seen);
            Assert.IsTrue(reply.IsDone);
            // A cancelled reply stores nothing: the session never started.
            Assert.AreEqual("NOT_FOUND", Failure(client.GetSession(session)).Code);
        }

        [Test]
        public void CancelsByRequestId()
        {
            var reply = client.Speak("marla", "Tell me every rumour you know.", session,
                new SpeakOptions { MaxTokens = 1000, Seed = 3 });
            var deadline = DateTime.UtcNow + Wait;
            while (string.IsNullOrEmpty(reply.RequestId) && !reply.IsDone && DateTime.UtcNow < deadline) System.Threading.Thread.Sleep(10);
            Result(client.Cancel(reply.RequestId).ContinueWith(t => { t.Wait(); return true; }));
            var final = Result(reply.Task);
            Assert.AreEqual("FINISH_REASON_CANCELLED", final.FinishReason);
            Assert.IsFalse(final.Stored);
        }

        [Test]
        public void UnknownNpcIsNotFound()
        {
            var reply = client.Speak("nobody", "Hello?", session, Short);
            var error = Failure(reply.Task);
            Assert.AreEqual("NOT_FOUND", error.Code);
            StringAssert.Contains("nobody", error.StatusMessage);
            Assert.AreSame(error, reply.Error);

            Assert.AreEqual("NOT_FOUND", Failure(client.GetNpc("nobody")).Code);
            Assert.AreEqual("INVALID_ARGUMENT", Failure(client.Speak("brann", "", session).Task).Code);
            // The connection stays usable after errors.
            Assert.IsNotEmpty(Result(client.ListNpcs()));
        }

        [Test]
        public void ReconnectsAfterTheConnectionDrops()
        {
            Assert.IsNotEmpty(Result(client.ListNpcs()));
            Assert.IsTrue(client.IsConnected);
            client.Disconnect();
            var deadline = DateTime.UtcNow + Wait;
            while (client.IsConnected && DateTime.UtcNow < deadline) System.Threading.Thread.Sleep(10);
            Assert.IsFalse(client.IsConnected);
            // The next call reconnects.
            CollectionAssert.Contains(Result(client.ListNpcs()).Select(n => n.Profile.Id).ToList(), "pip");
            Assert.IsTrue(client.IsConnected);

            // No daemon there: UNAVAILABLE after the attempts, with a message that says what to check.
            var broken = new NpcRuntimeClient("ws://127.0.0.1:1") { MaxConnectAttempts = 2, InitialBackoff = TimeSpan.FromMilliseconds(10) };
            var error = Failure(broken.ListNpcs());
            Assert.AreEqual("UNAVAILABLE", error.Code);
            StringAssert.Contains("npc-runtime serve", error.StatusMessage);
            broken.Dispose();
        }

        [Test]
        public void QueueDispatcherRunsCallbacksOnThePumpingThread()
        {
            var queue = new QueueDispatcher();
            var url = Environment.GetEnvironmentVariable("NPC_RUNTIME_BRIDGE_URL");
            using (var queued = new NpcRuntimeClient(url, queue))
            {
                int thread = System.Threading.Thread.CurrentThread.ManagedThreadId;
                var threads = new List<int>();
                var reply = queued.Speak("pip", "Hello there!", session, Short);
                reply.OnToken += t => threads.Add(System.Threading.Thread.CurrentThread.ManagedThreadId);
                var deadline = DateTime.UtcNow + Wait;
                while (!reply.IsDone && DateTime.UtcNow < deadline)
                {
                    queue.RunPending();
                    System.Threading.Thread.Sleep(5);
                }
                Assert.IsTrue(reply.IsDone);
                Assert.IsNull(reply.Error);
                Assert.That(threads.Count, Is.InRange(1, MaxTokens));
                Assert.IsTrue(threads.All(t => t == thread));
            }
        }
    }
}
