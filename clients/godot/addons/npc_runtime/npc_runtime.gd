extends Node
## The NpcRuntime autoload: one WebSocket connection to the npc-runtime daemon's engine
## bridge (README, "Engine bridge (WebSocket)"), polled in _process, reconnecting with
## backoff.
##
## Frames are JSON text frames of the bridge protocol. The exact frames this script
## sends are listed, with the shapes of the frames that answer them, in
## clients/protocol/godot_frames.json (same format as clients/protocol/frames.json);
## tests/test_godot_addon.py replays them against a real daemon. A request frame is
## {"id": "<request id>", "method": "<NpcRuntime method>", "request": {...}}; a cancel is
## {"id": "<request id>", "cancel": true}. The daemon answers with frames carrying the same
## id and an "event" (Speak), a "response" (unary calls) or an "error" {code, message};
## the last frame of a call has "done": true.
##
## Every call returns a request id (an int; the frame id is that int as a string).
## Results arrive as signals carrying that id. Calls made while disconnected are queued
## and sent once connected; calls in flight when the connection drops end with an
## error(request_id, "UNAVAILABLE", ...) (the daemon cancels them when it closes).

## A token of a Speak reply (a text delta: concatenated, they make the reply).
signal token_received(npc_id: String, request_id: int, text: String)
## A complete sentence of a Speak reply (for subtitles or text-to-speech).
signal sentence_completed(npc_id: String, request_id: int, text: String)
## The whole reply; info is the bridge's "final" object (finish_reason, stored,
## prompt_tokens, completion_tokens, ...).
signal reply_completed(npc_id: String, request_id: int, text: String, info: Dictionary)
## The reply has started; info is the bridge's "started" object.
signal reply_started(npc_id: String, request_id: int, info: Dictionary)
## A call failed: code is a gRPC status name (NOT_FOUND, INVALID_ARGUMENT, CANCELLED,
## UNAVAILABLE, ...), message says what to fix. request_id 0: a frame the daemon could
## not attribute to a call.
signal error(request_id: int, code: String, message: String)
## register_npc() succeeded: npc is the registered Npc {profile, kind, blend}.
signal npc_registered(npc: Dictionary)
## list_npcs(): npcs is an Array of Npc dictionaries {profile: {id, name, ...}, ...}.
signal npcs_listed(npcs: Array)
## get_session(): session is {id, turns: [{seq, speaker_kind, npc_id, speaker_name,
## text, ...}], ...}.
signal session_received(session: Dictionary)
## Any other unary call made with call_method().
signal response_received(request_id: int, method: String, response: Dictionary)
signal connected
signal disconnected

const URL_SETTING := "npc_runtime/url"
const TOKEN_SETTING := "npc_runtime/token"
const DEFAULT_URL := "ws://127.0.0.1:50052"
const MIN_BACKOFF := 0.5
const MAX_BACKOFF := 10.0
## Session lists and NPC lists can outgrow Godot's default 64 KiB buffer.
const BUFFER_BYTES := 4 * 1024 * 1024

## The session speak() uses when given none.
var default_session_id: String = "default"
## Set before the first frame (or change and call reconnect()).
var url: String = DEFAULT_URL
var token: String = ""

var _peer: WebSocketPeer = null
var _open: bool = false
var _retry_in: float = 0.0
var _backoff: float = MIN_BACKOFF
var _next_id: int = 1
## request id -> {"method": String, "npc_id": String, "sent": bool}
var _calls: Dictionary = {}
## Frames (JSON text) waiting for the connection: [request id, text] pairs.
var _outbox: Array = []


func _ready() -> void:
	url = str(ProjectSettings.get_setting(URL_SETTING, DEFAULT_URL))
	token = str(ProjectSettings.get_setting(TOKEN_SETTING, ""))
	var env_token := OS.get_environment("NPC_RUNTIME_TOKEN")
	if token.is_empty() and not env_token.is_empty():
		token = env_token


func _process(delta: float) -> void:
	if _peer == null:
		_retry_in -= delta
		if _retry_in <= 0.0:
			_open_peer()
		return
	_peer.poll()
	var state := _peer.get_ready_state()
	if state == WebSocketPeer.STATE_OPEN:
		if not _open:
			_open = true
			_backoff = MIN_BACKOFF
			connected.emit()
			_flush()
		while _peer.get_available_packet_count() > 0:
			var packet := _peer.get_packet()
			if _peer.was_string_packet():
				_handle_text(packet.get_string_from_utf8())
	elif state == WebSocketPeer.STATE_CLOSED:
		_on_closed()


func is_connected_to_daemon() -> bool:
	return _open


## The NPC npc_id replies to the player's text in a session (default_session_id when
## empty). sampling: {max_tokens, temperature, top_p, top_k, seed, ...} (proto Sampling).
## Returns the request id that token_received, sentence_completed, reply_completed and
## error carry.
func speak(npc_id: String, text: String, session_id := "", sampling: Dictionary = {}) -> int:
	var request := {
		"npc_id": npc_id,
		"session_id": session_id if not session_id.is_empty() else default_session_id,
		"text": text,
	}
	if not sampling.is_empty():
		request["sampling"] = sampling
	return _call("Speak", request, npc_id)


## Registers a new NPC from a profile {id, name, profile, style?, greeting?, examples?};
## npc_registered(npc) follows (the daemon needs the admin token when it has one).
func register_npc(profile: Dictionary) -> int:
	return _call("RegisterNpc", {"profile": profile})


## Stops a call (a Speak reply) in flight: it ends with error(request_id, "CANCELLED", ...)
## and a cancelled reply stores nothing. An id not in flight is ignored.
func cancel(request_id: int) -> void:
	if not _calls.has(request_id):
		return
	if not _calls[request_id]["sent"]:
		for i in range(_outbox.size()):
			if _outbox[i][0] == request_id:
				_outbox.remove_at(i)
				break
		_calls.erase(request_id)
		error.emit(request_id, "CANCELLED", "cancelled before it was sent")
		return
	_send_frame(request_id, {"id": str(request_id), "cancel": true})


## npcs_listed(npcs) follows.
func list_npcs() -> int:
	return _call("ListNpcs", {})


## session_received(session) follows: one page of turns, oldest first; pass its
## next_page_token back as page_token for the next ("" on the last page). NOT_FOUND (via
## error) for a session never spoken in.
func get_session(session_id: String, page_token: String = "") -> int:
	var request := {"session_id": session_id}
	if page_token != "":
		request["page_token"] = page_token
	return _call("GetSession", request)


## Any other unary method of npc_runtime.v1.NpcRuntime (GetNpc, GetStatus, RemoveNpc,
## ResetSession, ListSessions): response_received(request_id, method, response) follows.
func call_method(method: String, request: Dictionary) -> int:
	return _call(method, request)


## Closes the connection (in-flight calls end with UNAVAILABLE) and connects again.
func reconnect() -> void:
	if _peer != null:
		_peer.close()
		_on_closed()
	_backoff = MIN_BACKOFF
	_retry_in = 0.0


func _call(method: String, request: Dictionary, npc_id := "") -> int:
	var request_id := _next_id
	_next_id += 1
	_calls[request_id] = {"method": method, "npc_id": npc_id, "sent": false}
	var frame := {"id": str(request_id), "method": method, "request": request}
	_send_frame(request_id, frame)
	return request_id


func _send_frame(request_id: int, frame: Dictionary) -> void:
	var text := JSON.stringify(frame)
	if _open and _peer.send_text(text) == OK:
		if _calls.has(request_id):
			_calls[request_id]["sent"] = true
	else:
		_outbox.append([request_id, text])


func _flush() -> void:
	var pending := _outbox
	_outbox = []
	for item in pending:
		var request_id: int = item[0]
		if _peer.send_text(item[1]) != OK:
			_outbox.append(item)
		elif _calls.has(request_id):
			_calls[request_id]["sent"] = true


func _open_peer() -> void:
	_peer = WebSocketPeer.new()
	_peer.inbound_buffer_size = BUFFER_BYTES
	_peer.outbound_buffer_size = BUFFER_BYTES
	if not token.is_empty():
		_peer.handshake_headers = PackedStringArray(["Authorization: Bearer " + token])
	if _peer.connect_to_url(url) != OK:
		_peer = null
		_schedule_retry()


func _on_closed() -> void:
	var was_open := _open
	_peer = null
	_open = false
	var lost: Array = []
	for request_id in _calls:
		if _calls[request_id]["sent"]:
			lost.append(request_id)
	for request_id in lost:
		_calls.erase(request_id)
		error.emit(request_id, "UNAVAILABLE", "the connection to the npc-runtime daemon closed")
	if was_open:
		disconnected.emit()
	_schedule_retry()


func _schedule_retry() -> void:
	_retry_in = _backoff
	_backoff = minf(_backoff * 2.0, MAX_BACKOFF)


func _handle_text(text: String) -> void:
	var frame: Variant = JSON.parse_string(text)
	if typeof(frame) != TYPE_DICTIONARY:
		push_warning("npc_runtime: not a JSON object frame: %s" % text.left(200))
		return
	var frame_id := str(frame.get("id", ""))
	var request_id: int = int(frame_id) if frame_id.is_valid_int() else 0
	var entry: Dictionary = _calls.get(request_id, {})
	var method := str(entry.get("method", ""))
	var npc_id := str(entry.get("npc_id", ""))
	if frame.has("error"):
		var err: Dictionary = frame["error"]
		error.emit(request_id, str(err.get("code", "UNKNOWN")), str(err.get("message", "")))
	elif frame.has("event"):
		_handle_event(npc_id, request_id, frame["event"])
	elif frame.has("response"):
		_handle_response(method, request_id, frame["response"])
	if frame.get("done", false):
		_calls.erase(request_id)


func _handle_event(npc_id: String, request_id: int, event: Dictionary) -> void:
	if event.has("token"):
		token_received.emit(npc_id, request_id, str(event["token"].get("text", "")))
	elif event.has("sentence"):
		sentence_completed.emit(npc_id, request_id, str(event["sentence"].get("text", "")))
	elif event.has("final"):
		var final: Dictionary = event["final"]
		reply_completed.emit(npc_id, request_id, str(final.get("text", "")), final)
	elif event.has("started"):
		reply_started.emit(npc_id, request_id, event["started"])


func _handle_response(method: String, request_id: int, response: Dictionary) -> void:
	match method:
		"ListNpcs":
			npcs_listed.emit(response.get("npcs", []))
		"GetSession":
			session_received.emit(response)
		"RegisterNpc":
			npc_registered.emit(response)
		_:
			response_received.emit(request_id, method, response)
