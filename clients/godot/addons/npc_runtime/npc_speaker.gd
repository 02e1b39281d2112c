class_name NpcSpeaker
extends Node
## One NPC's voice: speak(text) sends the player's line to npc_id through the NpcRuntime
## autoload, and this node emits the events of the replies it asked for, and only those
## (each call's own NpcReply: another script speaking as the same NPC never shows up
## here). Put one under each NPC of a scene.

signal reply_started(request_id: int)
signal token_received(request_id: int, text: String)
signal sentence_completed(request_id: int, text: String)
signal reply_completed(request_id: int, text: String, info: Dictionary)
## The NPC takes one of its actions (after its speech): hand over the item, open the gate.
signal action_requested(request_id: int, name: String, arguments: Dictionary)
signal error(request_id: int, code: String, message: String)

const RUNTIME_PATH := "/root/NpcRuntime"

## The NPC's id in the daemon's cast (brann, marla, ...).
@export var npc_id: String = ""
## The conversation (scene, save slot); empty: NpcRuntime.default_session_id.
@export var session_id: String = ""
## Sampling for every reply ({max_tokens, temperature, seed, ...}); empty: the daemon's.
@export var sampling: Dictionary = {}
## What this NPC may do: [{name, description, parameters}] (see NpcRuntime.speak()).
@export var actions: Array = []
## "auto" (empty), "none", "required" or one action's name.
@export var action_choice: String = ""

## The latest reply (an NpcReply), or null before the first speak().
var current: RefCounted = null

var _runtime: Node = null


func _ready() -> void:
	_runtime = get_node_or_null(RUNTIME_PATH)
	if _runtime == null:
		push_error("NpcSpeaker: no NpcRuntime autoload: enable the npc_runtime plugin")


## The player says text to this NPC; returns its NpcReply (null without the autoload).
func speak(text: String) -> RefCounted:
	if _runtime == null:
		return null
	var reply = _runtime.speak(npc_id, text, session_id, sampling, actions, action_choice)
	var request_id: int = reply.request_id
	reply.started.connect(func(_info: Dictionary) -> void: reply_started.emit(request_id))
	reply.token.connect(func(delta: String) -> void: token_received.emit(request_id, delta))
	reply.sentence.connect(func(line: String) -> void: sentence_completed.emit(request_id, line))
	reply.action.connect(
		func(name: String, arguments: Dictionary) -> void:
			action_requested.emit(request_id, name, arguments)
	)
	reply.completed.connect(
		func(whole: String, info: Dictionary) -> void: reply_completed.emit(request_id, whole, info)
	)
	reply.failed.connect(
		func(code: String, message: String) -> void: error.emit(request_id, code, message)
	)
	current = reply
	return reply


## Stops this NPC's latest reply if it is in flight (error(..., "CANCELLED", ...) follows).
func cancel() -> void:
	if current != null:
		current.cancel()
