extends RefCounted
## One Speak call in flight, returned by NpcRuntime.speak(): its own signals, so two
## scripts speaking as one NPC never receive each other's tokens. Await it or connect:
##     var reply = NpcRuntime.speak("brann", "Can you mend my sword?", "save1")
##     reply.token.connect(func(text): $Label.text += text)
##     var text: String = await reply.completed

## The reply has started; info is the bridge's "started" object (npc_name, request_id).
signal started(info: Dictionary)
## A text delta of the reply: concatenated, they make the reply.
signal token(text: String)
## A complete sentence (for subtitles or text-to-speech).
signal sentence(text: String)
## An action the NPC takes: its name and its arguments (valid against the action's
## schema), after the speech and before completed.
signal action(name: String, arguments: Dictionary)
## The whole reply, stored; info is the bridge's "final" object (finish_reason, stored,
## prompt_tokens, completion_tokens, cached_prompt_tokens, ...).
signal completed(text: String, info: Dictionary)
## The call failed: a gRPC status name (CANCELLED, NOT_FOUND, UNAVAILABLE, ...) and why.
signal failed(code: String, message: String)

## The call's id (NpcRuntime.cancel() takes it).
var request_id: int = 0
var npc_id: String = ""
var session_id: String = ""
## The text streamed so far.
var text: String = ""
## The sentences completed so far.
var sentences: PackedStringArray = PackedStringArray()
## The actions taken so far, each {name, arguments}.
var actions: Array = []
## True once completed or failed has been emitted.
var done: bool = false
## The "final" object once completed; the error {code, message} once failed.
var final: Dictionary = {}
var error: Dictionary = {}

var _cancel: Callable


func _init(id: int, npc: String, session: String, cancel_call: Callable) -> void:
	request_id = id
	npc_id = npc
	session_id = session
	_cancel = cancel_call


## Stops the reply: failed("CANCELLED", ...) follows and nothing is stored.
func cancel() -> void:
	if not done:
		_cancel.call(request_id)


func _on_event(event: Dictionary) -> void:
	if event.has("started"):
		started.emit(event["started"])
	elif event.has("token"):
		var delta := str(event["token"].get("text", ""))
		text += delta
		token.emit(delta)
	elif event.has("sentence"):
		var line := str(event["sentence"].get("text", ""))
		sentences.append(line)
		sentence.emit(line)
	elif event.has("action"):
		var name := str(event["action"].get("name", ""))
		var parsed = JSON.parse_string(str(event["action"].get("arguments_json", "{}")))
		var arguments: Dictionary = parsed if parsed is Dictionary else {}
		actions.append({"name": name, "arguments": arguments})
		action.emit(name, arguments)
	elif event.has("final"):
		done = true
		final = event["final"]
		completed.emit(str(final.get("text", "")), final)


func _on_error(code: String, message: String) -> void:
	if done:
		return
	done = true
	error = {"code": code, "message": message}
	failed.emit(code, message)
