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
## speak() returns an NpcReply (npc_reply.gd) with signals of its own; every other call
## returns a request id (an int; the frame id is that int as a string), carried by the
## signals that answer it. Calls made while disconnected are queued and sent once
## connected; calls in flight when the connection drops end with an
## error(request_id, "UNAVAILABLE", ...) (the daemon cancels them when it closes).
##
## With the project setting npc_runtime/bundle_path (a folder written by `npc-runtime
## bundle`), the autoload starts that daemon itself (npc_daemon.gd), connects once it is
## ready, restarts it if it dies, and the daemon stops when the game does.

## A token of a Speak reply (a text delta: concatenated, they make the reply). The
## NpcReply that speak() returned has the same events for its call alone.
signal token_received(npc_id: String, request_id: int, text: String)
## A complete sentence of a Speak reply (for subtitles or text-to-speech).
signal sentence_completed(npc_id: String, request_id: int, text: String)
## The whole reply; info is the bridge's "final" object (finish_reason, stored,
## prompt_tokens, completion_tokens, ...).
signal reply_completed(npc_id: String, request_id: int, text: String, info: Dictionary)
## The reply has started; info is the bridge's "started" object.
signal reply_started(npc_id: String, request_id: int, info: Dictionary)
## An NPC takes an action (see speak()): its name and arguments, after the speech.
signal action_requested(npc_id: String, request_id: int, name: String, arguments: Dictionary)
## A call failed: code is a gRPC status name (NOT_FOUND, INVALID_ARGUMENT, CANCELLED,
## UNAVAILABLE, ...), message says what to fix. request_id 0: a frame the daemon could
## not attribute to a call.
signal error(request_id: int, code: String, message: String)
## register_npc() succeeded: npc is the registered Npc {profile, kind, blend}.
signal npc_registered(request_id: int, npc: Dictionary)
## list_npcs(): npcs is an Array of Npc dictionaries {profile: {id, name, ...}, ...}.
signal npcs_listed(request_id: int, npcs: Array)
## get_session(): session is {id, turns: [{seq, speaker_kind, npc_id, speaker_name,
## text, ...}], next_page_token, turn_count, ...}.
signal session_received(request_id: int, session: Dictionary)
## react(): every reply of the call is stored (done is the bridge's "done" object:
## stored, turns_stored, total_seconds); each NpcReply has completed first.
signal reaction_completed(request_id: int, done: Dictionary)
## converse(): a turn of the scene begins; connect its NpcReply's signals.
signal scene_turn(request_id: int, reply: RefCounted)
## converse(): the scene is over; done is the bridge's "done" object (turns_stored,
## cancelled, total_seconds).
signal scene_completed(request_id: int, done: Dictionary)
## Any other unary call made with call_method().
signal response_received(request_id: int, method: String, response: Dictionary)
signal connected
signal disconnected
## The bundled daemon serves: info is its readiness {pid, port, bridge_port, npc_count, ...}.
signal daemon_ready(info: Dictionary)
## The bundled daemon died; restarting says whether it is being started again.
signal daemon_exited(restarting: bool)
## The bundled daemon could not start or died once too often: its start-up code
## (model_missing, data_dir_locked, ...), "exited" or "DEADLINE_EXCEEDED", and why.
signal daemon_failed(code: String, message: String)

const NpcReply := preload("npc_reply.gd")
const NpcDaemon := preload("npc_daemon.gd")
const URL_SETTING := "npc_runtime/url"
const TOKEN_SETTING := "npc_runtime/token"
const BUNDLE_SETTING := "npc_runtime/bundle_path"
## Where a started daemon keeps its sessions.
const DAEMON_DATA_DIR := "user://npc-runtime"
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
## request id -> {"method": String, "reply": NpcReply or null, "replies": {npc id:
## NpcReply} (React), "sent": bool}
var _calls: Dictionary = {}
## Frames (JSON text) waiting for the connection: [request id, text] pairs.
var _outbox: Array = []
## The daemon this autoload started (start_daemon()), or null.
var _daemon: NpcDaemon = null


func _ready() -> void:
	url = str(ProjectSettings.get_setting(URL_SETTING, DEFAULT_URL))
	token = str(ProjectSettings.get_setting(TOKEN_SETTING, ""))
	var env_token := OS.get_environment("NPC_RUNTIME_TOKEN")
	if token.is_empty() and not env_token.is_empty():
		token = env_token
	var bundle := str(ProjectSettings.get_setting(BUNDLE_SETTING, ""))
	if not bundle.is_empty():
		start_daemon(bundle)


func _process(delta: float) -> void:
	if _daemon != null:
		_daemon.poll(delta)
		if _daemon.info.is_empty():
			return  # nothing to connect to until it serves
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


## Starts the daemon of a bundle folder (absolute, or relative to the project folder in
## the editor and to the game's executable when exported) and connects once it serves;
## daemon_ready, daemon_exited and daemon_failed follow. The bundle_path setting calls it
## at start-up. Calls made before it is ready are sent once it is.
func start_daemon(bundle_path: String, extra_args := PackedStringArray()) -> bool:
	stop_daemon()
	_daemon = NpcDaemon.new()
	_daemon.bundle_dir = NpcDaemon.bundle_folder(bundle_path)
	_daemon.data_dir = ProjectSettings.globalize_path(DAEMON_DATA_DIR)
	_daemon.extra_args = extra_args
	_daemon.ready.connect(_on_daemon_ready)
	_daemon.exited.connect(_on_daemon_exited)
	_daemon.failed.connect(func(code: String, why: String) -> void: daemon_failed.emit(code, why))
	return _daemon.start()


## Kills the started daemon (it is not restarted); calls in flight end with UNAVAILABLE.
func stop_daemon() -> void:
	if _daemon == null:
		return
	_daemon.stop()
	_daemon = null
	_drop_connection()


## The started daemon's readiness (empty while none serves).
func daemon_info() -> Dictionary:
	return _daemon.info if _daemon != null else {}


## The NPC npc_id replies to the player's text in a session (default_session_id when
## empty). sampling: {max_tokens, temperature, top_p, top_k, seed, ...} (proto Sampling).
## actions: what the NPC may do, [{name, description, parameters}] (parameters: a JSON
## Schema of the arguments, a Dictionary); action_choice: "auto" (empty), "none",
## "required" or an action's name. Each action taken comes as the reply's action signal
## and the autoload's action_requested, after the speech, with valid arguments.
## Returns the call's NpcReply: connect its token, sentence, action, completed and failed
## signals (or await reply.completed). The autoload's token_received, sentence_completed,
## reply_completed and error signals carry its request_id too.
func speak(
	npc_id: String,
	text: String,
	session_id := "",
	sampling: Dictionary = {},
	actions: Array = [],
	action_choice := ""
) -> NpcReply:
	var session := session_id if not session_id.is_empty() else default_session_id
	var request := {"npc_id": npc_id, "session_id": session, "text": text}
	if not sampling.is_empty():
		request["sampling"] = sampling
	_add_actions(request, actions, action_choice)
	var reply := NpcReply.new(_next_id, npc_id, session, cancel)
	_call("Speak", request, reply)
	return reply


## Several NPCs answer one line of the player, decoded at once: returns an NpcReply per
## NPC, in npc_ids order (1-8 NPCs), each with its own signals; reaction_completed
## follows once the player's line and every reply are stored, in that order. With
## hear_earlier_replies each NPC also hears the replies before its own. actions and
## action_choice as in speak(), for every NPC.
func react(
	npc_ids: PackedStringArray,
	text: String,
	session_id := "",
	sampling: Dictionary = {},
	hear_earlier_replies := false,
	actions: Array = [],
	action_choice := ""
) -> Array:
	var session := session_id if not session_id.is_empty() else default_session_id
	var request := {"npc_ids": Array(npc_ids), "session_id": session, "text": text}
	if not sampling.is_empty():
		request["sampling"] = sampling
	if hear_earlier_replies:
		request["hear_earlier_replies"] = true
	_add_actions(request, actions, action_choice)
	var replies := {}
	var ordered: Array = []
	for npc_id in npc_ids:
		var reply := NpcReply.new(_next_id, npc_id, session, cancel)
		replies[npc_id] = reply
		ordered.append(reply)
	var request_id := _call("React", request)
	_calls[request_id]["replies"] = replies
	return ordered


## NPCs talk among themselves after the player's opening line: turns turns (0: one
## round), npc_ids (2-8) speaking in order, each hearing the whole scene. Each turn is
## stored as soon as it is complete. Returns the request id that scene_turn (an NpcReply
## per turn), scene_completed and error carry; cancel(request_id) stops the scene.
func converse(
	npc_ids: PackedStringArray, text: String, turns := 0, session_id := "", sampling := {}
) -> int:
	var session := session_id if not session_id.is_empty() else default_session_id
	var request := {"npc_ids": Array(npc_ids), "session_id": session, "text": text}
	if turns > 0:
		request["turns"] = turns
	if not sampling.is_empty():
		request["sampling"] = sampling
	var request_id := _call("Converse", request)
	_calls[request_id]["turns"] = []
	_calls[request_id]["session"] = session
	return request_id


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
		_fail(request_id, "CANCELLED", "cancelled before it was sent")
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
	_drop_connection()
	_backoff = MIN_BACKOFF
	_retry_in = 0.0


## The request's actions as the bridge takes them (each schema as JSON text).
func _add_actions(request: Dictionary, actions: Array, action_choice: String) -> void:
	if not actions.is_empty():
		var specs: Array = []
		for action: Dictionary in actions:
			var parameters = action.get("parameters", "")
			specs.append(
				{
					"name": str(action.get("name", "")),
					"description": str(action.get("description", "")),
					"parameters_json_schema":
					parameters if parameters is String else JSON.stringify(parameters),
				}
			)
		request["actions"] = specs
	if not action_choice.is_empty():
		request["action_choice"] = action_choice


func _call(method: String, request: Dictionary, reply: NpcReply = null) -> int:
	var request_id := _next_id
	_next_id += 1
	_calls[request_id] = {"method": method, "reply": reply, "sent": false}
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


func _drop_connection() -> void:
	if _peer != null:
		_peer.close()
		_on_closed()


func _on_closed() -> void:
	var was_open := _open
	_peer = null
	_open = false
	var lost: Array = []
	for request_id in _calls:
		if _calls[request_id]["sent"]:
			lost.append(request_id)
	for request_id in lost:
		_fail(request_id, "UNAVAILABLE", "the connection to the npc-runtime daemon closed")
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
	if frame.has("error"):
		var err: Dictionary = frame["error"]
		_fail(request_id, str(err.get("code", "UNKNOWN")), str(err.get("message", "")))
	elif frame.has("event") and entry.get("reply") != null:
		_handle_event(entry["reply"], frame["event"])
	elif frame.has("event") and entry.has("replies"):
		_handle_crowd_event(request_id, entry["replies"], frame["event"])
	elif frame.has("event") and entry.has("turns"):
		_handle_scene_event(request_id, entry, frame["event"])
	elif frame.has("response"):
		_handle_response(method, request_id, frame["response"])
	if frame.get("done", false):
		_calls.erase(request_id)


## Ends a call with an error: its replies' failed signals, then the autoload's error.
func _fail(request_id: int, code: String, message: String) -> void:
	var entry: Dictionary = _calls.get(request_id, {})
	_calls.erase(request_id)
	if entry.get("reply") != null:
		entry["reply"]._on_error(code, message)
	for reply in entry.get("replies", {}).values():
		reply._on_error(code, message)
	for reply in entry.get("turns", []):
		reply._on_error(code, message)
	error.emit(request_id, code, message)


func _handle_event(reply: NpcReply, event: Dictionary) -> void:
	reply._on_event(event)
	var npc_id := reply.npc_id
	var request_id := reply.request_id
	if event.has("token"):
		token_received.emit(npc_id, request_id, str(event["token"].get("text", "")))
	elif event.has("sentence"):
		sentence_completed.emit(npc_id, request_id, str(event["sentence"].get("text", "")))
	elif event.has("action"):
		var taken: Dictionary = reply.actions[-1]
		action_requested.emit(npc_id, request_id, taken["name"], taken["arguments"])
	elif event.has("final"):
		var final: Dictionary = event["final"]
		reply_completed.emit(npc_id, request_id, str(final.get("text", "")), final)
	elif event.has("started"):
		reply_started.emit(npc_id, request_id, event["started"])


func _handle_response(method: String, request_id: int, response: Dictionary) -> void:
	match method:
		"ListNpcs":
			npcs_listed.emit(request_id, response.get("npcs", []))
		"GetSession":
			session_received.emit(request_id, response)
		"RegisterNpc":
			npc_registered.emit(request_id, response)
		_:
			response_received.emit(request_id, method, response)


func _on_daemon_ready(info: Dictionary) -> void:
	url = "ws://%s:%d" % [str(info.get("host", "127.0.0.1")), int(info.get("bridge_port", 0))]
	reconnect()
	daemon_ready.emit(info)


func _on_daemon_exited(restarting: bool) -> void:
	_drop_connection()  # its calls in flight end with UNAVAILABLE now, not at a timeout
	daemon_exited.emit(restarting)


## A React event: each is one NPC's (its npc_id), but "done", which ends the call.
func _handle_crowd_event(request_id: int, replies: Dictionary, event: Dictionary) -> void:
	if event.has("done"):
		reaction_completed.emit(request_id, event["done"])
		return
	var reply: NpcReply = replies.get(str(event.get("npc_id", "")))
	if reply == null:
		return
	if event.has("reply"):
		_handle_event(reply, {"final": event["reply"]})
	else:
		_handle_event(reply, event)


## A Converse event: one turn's (its "turn" index), but "done", which ends the call.
func _handle_scene_event(request_id: int, entry: Dictionary, event: Dictionary) -> void:
	if event.has("done"):
		scene_completed.emit(request_id, event["done"])
		return
	var turns: Array = entry["turns"]
	var turn := int(event.get("turn", 0))
	if event.has("started") and turn == turns.size():
		var npc_id := str(event.get("npc_id", ""))
		turns.append(NpcReply.new(request_id, npc_id, entry["session"], cancel))
		scene_turn.emit(request_id, turns[turn])
	if turn >= turns.size():
		return
	if event.has("reply"):
		_handle_event(turns[turn], {"final": event["reply"]})
	else:
		_handle_event(turns[turn], event)
