class_name NpcSpeaker
extends Node
## One NPC's voice: speak(text) sends the player's line to npc_id through the NpcRuntime
## autoload, and this node re-emits the autoload's signals for its NPC only (errors: for
## the requests it made). Put one under each NPC of a scene.

signal reply_started(request_id: int)
signal token_received(request_id: int, text: String)
signal sentence_completed(request_id: int, text: String)
signal reply_completed(request_id: int, text: String, info: Dictionary)
signal error(request_id: int, code: String, message: String)

const RUNTIME_PATH := "/root/NpcRuntime"

## The NPC's id in the daemon's cast (brann, marla, ...).
@export var npc_id: String = ""
## The conversation (scene, save slot); empty: NpcRuntime.default_session_id.
@export var session_id: String = ""
## Sampling for every reply ({max_tokens, temperature, seed, ...}); empty: the daemon's.
@export var sampling: Dictionary = {}

var _requests: Dictionary = {}
var _runtime: Node = null


func _ready() -> void:
	_runtime = get_node_or_null(RUNTIME_PATH)
	if _runtime == null:
		push_error("NpcSpeaker: no NpcRuntime autoload: enable the npc_runtime plugin")
		return
	_runtime.connect("reply_started", _on_reply_started)
	_runtime.connect("token_received", _on_token_received)
	_runtime.connect("sentence_completed", _on_sentence_completed)
	_runtime.connect("reply_completed", _on_reply_completed)
	_runtime.connect("error", _on_error)


## The player says text to this NPC; returns the request id (0 without the autoload).
func speak(text: String) -> int:
	if _runtime == null:
		return 0
	var request_id: int = _runtime.speak(npc_id, text, session_id, sampling)
	_requests[request_id] = true
	return request_id


## Stops this NPC's reply in flight (error(request_id, "CANCELLED", ...) follows).
func cancel(request_id: int) -> void:
	if _runtime != null and _requests.has(request_id):
		_runtime.cancel(request_id)


func _on_reply_started(speaker: String, request_id: int, _info: Dictionary) -> void:
	if speaker == npc_id:
		reply_started.emit(request_id)


func _on_token_received(speaker: String, request_id: int, text: String) -> void:
	if speaker == npc_id:
		token_received.emit(request_id, text)


func _on_sentence_completed(speaker: String, request_id: int, text: String) -> void:
	if speaker == npc_id:
		sentence_completed.emit(request_id, text)


func _on_reply_completed(speaker: String, request_id: int, text: String, info: Dictionary) -> void:
	if speaker == npc_id:
		_requests.erase(request_id)
		reply_completed.emit(request_id, text, info)


func _on_error(request_id: int, code: String, message: String) -> void:
	if _requests.has(request_id):
		_requests.erase(request_id)
		error.emit(request_id, code, message)
