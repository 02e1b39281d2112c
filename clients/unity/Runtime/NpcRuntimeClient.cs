using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace NpcRuntime
{
    /// <summary>
    /// A client of the npc-runtime daemon's engine bridge (WebSocket, JSON text frames).
    /// One connection carries many calls at once; it opens on the first call and, when it
    /// drops, the next call reconnects with exponential backoff. Calls in flight when it
    /// drops fail with UNAVAILABLE. Callbacks run on the dispatcher given to the constructor.
    /// </summary>
    public sealed class NpcRuntimeClient : IDisposable
    {
        public const string DefaultUrl = "ws://127.0.0.1:50052";

        Uri uri;
        readonly IMainThreadDispatcher dispatcher;
        readonly SemaphoreSlim sendLock = new SemaphoreSlim(1, 1);
        readonly SemaphoreSlim connectLock = new SemaphoreSlim(1, 1);
        readonly object gate = new object();
        readonly Dictionary<string, Pending> calls = new Dictionary<string, Pending>();
        ClientWebSocket socket;
        CancellationTokenSource lifetime = new CancellationTokenSource();
        long nextId;
        bool disposed;

        /// <param name="url">The bridge, such as ws://127.0.0.1:50052.</param>
        /// <param name="dispatcher">Where callbacks run; null: at once, on the socket's thread.</param>
        /// <param name="token">With a daemon started with --token: sent as 'Authorization: Bearer token'.</param>
        public NpcRuntimeClient(string url = DefaultUrl, IMainThreadDispatcher dispatcher = null, string token = null)
        {
            uri = new Uri(url);
            this.dispatcher = dispatcher ?? ImmediateDispatcher.Instance;
            Token = token;
        }

        public string Token { get; set; }

        /// <summary>
        /// The bridge. Setting another one (a restarted daemon on a new port) drops the
        /// connection: calls in flight fail with UNAVAILABLE, the next call connects there.
        /// </summary>
        public string Url
        {
            get { return uri.ToString(); }
            set
            {
                var next = new Uri(value);
                if (next == uri) return;
                uri = next;
                Disconnect();
            }
        }
        /// <summary>Connection attempts per call before it fails with UNAVAILABLE.</summary>
        public int MaxConnectAttempts { get; set; } = 5;
        /// <summary>The first wait between attempts; each next one doubles, up to MaxBackoff.</summary>
        public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(200);
        public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(5);
        /// <summary>Limit of a unary call (Speak streams have none; cancel them instead).</summary>
        public TimeSpan CallTimeout { get; set; } = TimeSpan.FromSeconds(60);
        public bool IsConnected { get { var s = socket; return s != null && s.State == WebSocketState.Open; } }

        // ----- the API -----

        /// <summary>The NPC's reply to the player's line in a session (created on its first line).</summary>
        public SpeakReply Speak(string npcId, string text, string sessionId, SpeakOptions options = null)
        {
            string id = NewId();
            var reply = new SpeakReply(this, id, npcId, sessionId);
            var request = new SpeakRequest
            {
                NpcId = npcId ?? "", SessionId = sessionId ?? "", Text = text ?? "",
                Sampling = SpeakOptions.SamplingOf(options), SpeakerName = options?.SpeakerName,
                Actions = SpeakOptions.ActionsOf(options), ActionChoice = options?.ActionChoice ?? "",
                ResponseJsonSchema = options?.ResponseJsonSchema ?? "",
            };
            StartStream(id, "Speak", request.ToJson(), ev => reply.HandleEvent(SpeakEvent.FromJson(ev)), reply.HandleDone);
            return reply;
        }

        /// <summary>
        /// Several NPCs answer one line of the player, decoded at once (React): a
        /// <see cref="SpeakReply"/> per NPC, in npcIds order, with its own events; the
        /// player's line and the replies are stored together, in that order. With
        /// <paramref name="hearEarlierReplies"/> each NPC also hears the replies before its own.
        /// </summary>
        public CrowdReply React(IList<string> npcIds, string text, string sessionId, SpeakOptions options = null,
                                bool hearEarlierReplies = false)
        {
            string id = NewId();
            var ids = npcIds != null ? new List<string>(npcIds) : new List<string>();
            var crowd = new CrowdReply(this, id, ids, sessionId);
            var request = new ReactRequest
            {
                SessionId = sessionId ?? "", Text = text ?? "", NpcIds = ids, HearEarlierReplies = hearEarlierReplies,
                Sampling = SpeakOptions.SamplingOf(options), SpeakerName = options?.SpeakerName,
                Actions = SpeakOptions.ActionsOf(options), ActionChoice = options?.ActionChoice ?? "",
                ResponseJsonSchema = options?.ResponseJsonSchema ?? "",
            };
            StartStream(id, "React", request.ToJson(), ev => crowd.HandleEvent(ReactEvent.FromJson(ev)), crowd.HandleDone);
            return crowd;
        }

        /// <summary>
        /// NPCs talk among themselves (Converse): after the opening line, <paramref name="turns"/>
        /// turns (0: one round), the NPCs speaking in order, each hearing the whole scene.
        /// Each turn is stored as soon as it is complete; OnTurn announces it.
        /// </summary>
        public SceneReply Converse(IList<string> npcIds, string text, string sessionId, int turns = 0,
                                   SpeakOptions options = null)
        {
            string id = NewId();
            var scene = new SceneReply(this, id, sessionId);
            var request = new ConverseRequest
            {
                SessionId = sessionId ?? "", Text = text ?? "", Turns = turns,
                NpcIds = npcIds != null ? new List<string>(npcIds) : new List<string>(),
                Sampling = SpeakOptions.SamplingOf(options), SpeakerName = options?.SpeakerName,
            };
            StartStream(id, "Converse", request.ToJson(), ev => scene.HandleEvent(ConverseEvent.FromJson(ev)), scene.HandleDone);
            return scene;
        }

        /// <summary>Adds an NPC to the running cast from its profile (fusion; no restart).</summary>
        public async Task<Npc> RegisterNpc(NpcProfile profile)
        {
            var request = new RegisterNpcRequest { Profile = profile };
            var r = await Call("RegisterNpc", request.ToJson()).ConfigureAwait(false);
            return Npc.FromJson(r);
        }

        public async Task<List<Npc>> ListNpcs()
        {
            var r = await Call("ListNpcs", new Dictionary<string, object>()).ConfigureAwait(false);
            return ListNpcsResponse.FromJson(r).Npcs;
        }

        public async Task<Npc> GetNpc(string npcId)
        {
            var r = await Call("GetNpc", new GetNpcRequest { NpcId = npcId ?? "" }.ToJson()).ConfigureAwait(false);
            return Npc.FromJson(r);
        }

        /// <summary>Removes an NPC from the running cast (admin); returns it as it was.</summary>
        public async Task<Npc> RemoveNpc(string npcId)
        {
            var r = await Call("RemoveNpc", new RemoveNpcRequest { NpcId = npcId ?? "" }.ToJson()).ConfigureAwait(false);
            return RemoveNpcResponse.FromJson(r).Removed;
        }

        /// <summary>What the daemon runs and how busy it is.</summary>
        public async Task<Status> GetStatus()
        {
            var r = await Call("GetStatus", new GetStatusRequest().ToJson()).ConfigureAwait(false);
            return Status.FromJson(r);
        }

        /// <summary>Cancels a reply by the daemon's request id (SpeakReply.RequestId), from any connection.</summary>
        public Task Cancel(string requestId)
        {
            return Call("Cancel", new CancelRequest { RequestId = requestId ?? "" }.ToJson());
        }

        /// <summary>Cancels a reply of this client.</summary>
        public void Cancel(SpeakReply reply) { reply.Cancel(); }

        /// <summary>One page of a session's turns, oldest first (up to 200, or
        /// <paramref name="pageSize"/>); pass <see cref="Session.NextPageToken"/> back for the next.</summary>
        public async Task<Session> GetSession(string sessionId, string pageToken = "", int pageSize = 0)
        {
            var request = new GetSessionRequest { SessionId = sessionId ?? "", PageToken = pageToken ?? "", PageSize = pageSize };
            var r = await Call("GetSession", request.ToJson()).ConfigureAwait(false);
            return Session.FromJson(r);
        }

        /// <summary>Forgets a session's turns; returns how many were removed.</summary>
        public async Task<int> ResetSession(string sessionId)
        {
            var r = await Call("ResetSession", new ResetSessionRequest { SessionId = sessionId ?? "" }.ToJson()).ConfigureAwait(false);
            return (int)ResetSessionResponse.FromJson(r).TurnsRemoved;
        }

        /// <summary>
        /// Any unary method of npc_runtime.v1.NpcRuntime with its request in the proto3 JSON
        /// mapping; the response as parsed JSON. Completes on the dispatcher.
        /// </summary>
        public Task<Dictionary<string, object>> Call(string method, Dictionary<string, object> request)
        {
            var tcs = new TaskCompletionSource<Dictionary<string, object>>();
            string id = NewId();
            var timer = new CancellationTokenSource(CallTimeout);
            timer.Token.Register(() =>
            {
                if (Forget(id))
                {
                    SendCancelFrame(id);
                    dispatcher.Post(() => tcs.TrySetException(new NpcRuntimeException(
                        "DEADLINE_EXCEEDED", method + " got no answer in " + CallTimeout.TotalSeconds + " s")));
                }
            });
            Start(id, method, request, frame =>
            {
                if (!frame.Bool("done")) return;
                timer.Dispose();
                var error = ErrorOf(frame);
                var response = frame.Obj("response") ?? new Dictionary<string, object>();
                dispatcher.Post(() =>
                {
                    if (error != null) tcs.TrySetException(error);
                    else tcs.TrySetResult(response);
                });
            }, error =>
            {
                timer.Dispose();
                dispatcher.Post(() => tcs.TrySetException(error));
            });
            return tcs.Task;
        }

        /// <summary>Opens the connection now (calls open it anyway), retrying with backoff.</summary>
        public async Task ConnectAsync()
        {
            await connectLock.WaitAsync().ConfigureAwait(false);
            try
            {
                if (disposed) throw new ObjectDisposedException("NpcRuntimeClient");
                if (IsConnected) return;
                TimeSpan backoff = InitialBackoff;
                Exception last = null;
                for (int attempt = 1; attempt <= Math.Max(1, MaxConnectAttempts); attempt++)
                {
                    var ws = new ClientWebSocket();
                    if (!string.IsNullOrEmpty(Token)) ws.Options.SetRequestHeader("Authorization", "Bearer " + Token);
                    try
                    {
                        await ws.ConnectAsync(uri, lifetime.Token).ConfigureAwait(false);
                        socket = ws;
                        _ = ReceiveLoop(ws);
                        return;
                    }
                    catch (Exception exc)
                    {
                        ws.Dispose();
                        last = exc;
                        if (disposed) break;
                    }
                    if (attempt < MaxConnectAttempts)
                    {
                        await Task.Delay(backoff).ConfigureAwait(false);
                        backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
                    }
                }
                throw new NpcRuntimeException("UNAVAILABLE", "cannot reach the npc-runtime daemon at " + uri +
                    " (is `npc-runtime serve` running, with --bridge-port?): " + (last == null ? "" : last.Message), last);
            }
            finally
            {
                connectLock.Release();
            }
        }

        /// <summary>
        /// Drops the connection (calls in flight fail with UNAVAILABLE); the next call
        /// reconnects. Use it when the game pauses or the network changes.
        /// </summary>
        public void Disconnect()
        {
            var ws = socket;
            if (ws != null)
            {
                try { ws.Abort(); } catch (Exception) { }
            }
        }

        /// <summary>Closes the connection; calls in flight fail with CANCELLED.</summary>
        public void Dispose()
        {
            if (disposed) return;
            disposed = true;
            lifetime.Cancel();
            var ws = socket;
            socket = null;
            if (ws != null)
            {
                try { ws.Abort(); } catch (Exception) { }
                ws.Dispose();
            }
            FailAll(new NpcRuntimeException("CANCELLED", "the client was disposed"));
        }

        // ----- plumbing -----

        string NewId() { return "u" + Interlocked.Increment(ref nextId).ToString(System.Globalization.CultureInfo.InvariantCulture); }

        static NpcRuntimeException ErrorOf(Dictionary<string, object> frame)
        {
            var error = frame.Obj("error");
            return error == null ? null : new NpcRuntimeException(error.Str("code"), error.Str("message"));
        }

        /// <summary>A streaming call: each event, then its end, on the dispatcher.</summary>
        void StartStream(string id, string method, Dictionary<string, object> request,
                         Action<Dictionary<string, object>> onEvent, Action<NpcRuntimeException> onDone)
        {
            Start(id, method, request, frame =>
            {
                var ev = frame.Obj("event");
                if (ev != null) dispatcher.Post(() => onEvent(ev));
                if (frame.Bool("done"))
                {
                    var error = ErrorOf(frame);
                    dispatcher.Post(() => onDone(error));
                }
            }, error => dispatcher.Post(() => onDone(error)));
        }

        sealed class Pending
        {
            public Action<Dictionary<string, object>> OnFrame;
            public Action<NpcRuntimeException> OnFailure;
            // The connection its request went out on: only that one's end fails it.
            public ClientWebSocket SentOn;
        }

        void Start(string id, string method, Dictionary<string, object> request,
                   Action<Dictionary<string, object>> onFrame, Action<NpcRuntimeException> onFailure)
        {
            lock (gate) calls[id] = new Pending { OnFrame = onFrame, OnFailure = onFailure };
            var frameText = Json.Serialize(new Dictionary<string, object>
            {
                { "id", id }, { "method", method }, { "request", request },
            });
            SendAsync(frameText, id).ContinueWith(t =>
            {
                if (t.Exception == null) return;
                var inner = t.Exception.GetBaseException();
                var error = inner as NpcRuntimeException ??
                    new NpcRuntimeException("UNAVAILABLE", "sending " + method + " failed: " + inner.Message, inner);
                if (Forget(id)) onFailure(error);
            }, TaskContinuationOptions.ExecuteSynchronously);
        }

        bool Forget(string id)
        {
            lock (gate) return calls.Remove(id);
        }

        internal void CancelCall(string id)
        {
            bool inFlight;
            lock (gate) inFlight = calls.ContainsKey(id);
            if (inFlight) SendCancelFrame(id);
        }

        void SendCancelFrame(string id)
        {
            var text = Json.Serialize(new Dictionary<string, object> { { "id", id }, { "cancel", true } });
            SendAsync(text, null).ContinueWith(t => { var ignored = t.Exception; }, TaskContinuationOptions.ExecuteSynchronously);
        }

        async Task SendAsync(string text, string callId)
        {
            if (!IsConnected) await ConnectAsync().ConfigureAwait(false);
            var bytes = new ArraySegment<byte>(Encoding.UTF8.GetBytes(text));
            await sendLock.WaitAsync().ConfigureAwait(false);
            try
            {
                var ws = socket;
                if (ws == null) throw new NpcRuntimeException("UNAVAILABLE", "not connected");
                if (callId != null)
                {
                    lock (gate)
                    {
                        Pending pending;
                        if (calls.TryGetValue(callId, out pending)) pending.SentOn = ws;
                    }
                }
                await ws.SendAsync(bytes, WebSocketMessageType.Text, true, lifetime.Token).ConfigureAwait(false);
            }
            finally
            {
                sendLock.Release();
            }
        }

        async Task ReceiveLoop(ClientWebSocket ws)
        {
            var buffer = new byte[16 * 1024];
            var message = new MemoryStream();
            string why = "the connection closed";
            try
            {
                while (ws.State == WebSocketState.Open)
                {
                    var result = await ws.ReceiveAsync(new ArraySegment<byte>(buffer), lifetime.Token).ConfigureAwait(false);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        why = "the daemon closed the connection (" + result.CloseStatus + " " + result.CloseStatusDescription + ")";
                        break;
                    }
                    message.Write(buffer, 0, result.Count);
                    if (!result.EndOfMessage) continue;
                    if (result.MessageType == WebSocketMessageType.Text)
                        Route(Encoding.UTF8.GetString(message.GetBuffer(), 0, (int)message.Length));
                    message.SetLength(0);
                }
            }
            catch (Exception exc)
            {
                why = "the connection broke: " + exc.Message;
            }
            lock (gate)
            {
                if (socket == ws) socket = null;
            }
            try { ws.Dispose(); } catch (Exception) { }
            if (!disposed) FailAll(new NpcRuntimeException("UNAVAILABLE", why + "; the next call reconnects"), ws);
        }

        void Route(string text)
        {
            Dictionary<string, object> frame;
            try
            {
                frame = Json.Parse(text) as Dictionary<string, object>;
            }
            catch (FormatException)
            {
                return;
            }
            if (frame == null) return;
            string id = frame.Str("id");
            Pending pending;
            lock (gate)
            {
                if (!calls.TryGetValue(id, out pending)) return;
                if (frame.Bool("done")) calls.Remove(id);
            }
            pending.OnFrame(frame);
        }

        /// <summary>Fails the calls sent on `only` (all calls when null).</summary>
        void FailAll(NpcRuntimeException error, ClientWebSocket only = null)
        {
            var failed = new List<Pending>();
            lock (gate)
            {
                foreach (var entry in calls.ToList())
                {
                    if (only != null && entry.Value.SentOn != only) continue;
                    calls.Remove(entry.Key);
                    failed.Add(entry.Value);
                }
            }
            foreach (var pending in failed) pending.OnFailure(error);
        }
    }
}
