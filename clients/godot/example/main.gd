extends Control
## The player types a line; the NPC picked in the menu (Brann the blacksmith or Marla the
## innkeeper, from the demo village cast) answers, streamed token by token into its label.
## Both speak in one session, so each hears what the other said.

const SESSION_ID := "godot-example"

@onready var _input: LineEdit = $Panel/Rows/Input
@onready var _target: OptionButton = $Panel/Rows/Target
@onready var _status: Label = $Panel/Rows/Status
@onready var _speakers: Array[NpcSpeaker] = [$Brann, $Marla]
@onready var _labels: Array[Label] = [$Panel/Rows/BrannReply, $Panel/Rows/MarlaReply]


func _ready() -> void:
	for i in range(_speakers.size()):
		var speaker := _speakers[i]
		var label := _labels[i]
		speaker.session_id = SESSION_ID
		speaker.reply_started.connect(func(_id: int) -> void: label.text = "")
		speaker.token_received.connect(func(_id: int, text: String) -> void: label.text += text)
		speaker.reply_completed.connect(_on_reply_completed.bind(label))
		speaker.error.connect(_on_error)
	NpcRuntime.connected.connect(func() -> void: _status.text = "connected")
	NpcRuntime.disconnected.connect(func() -> void: _status.text = "reconnecting...")
	# With npc_runtime/bundle_path set, the autoload runs the daemon itself:
	NpcRuntime.daemon_ready.connect(
		func(info: Dictionary) -> void: _status.text = "daemon ready: %d NPCs" % info["npc_count"]
	)
	NpcRuntime.daemon_failed.connect(
		func(code: String, message: String) -> void: _on_error(0, code, message)
	)
	_input.text_submitted.connect(_on_text_submitted)


func _on_text_submitted(text: String) -> void:
	if text.strip_edges().is_empty():
		return
	_speakers[_target.selected].speak(text)
	_input.clear()


func _on_reply_completed(_id: int, text: String, _info: Dictionary, label: Label) -> void:
	label.text = text


func _on_error(_id: int, code: String, message: String) -> void:
	_status.text = "%s: %s" % [code, message]
