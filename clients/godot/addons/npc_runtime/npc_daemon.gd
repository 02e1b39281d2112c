extends RefCounted
## The bundled daemon as a child process of the game: a folder written by
## `npc-runtime bundle`, started with OS.create_process on free ports, ready once its
## ready file says so, restarted a bounded number of times if it dies. It is started with
## --parent-pid, so it shuts down cleanly when the game's process ends, crash or not;
## stop() kills it at once (nothing stored is lost: every stored reply was committed to
## disk before its "final" event). The NpcRuntime autoload polls it from _process.

## The daemon serves; info is its readiness {pid, host, port, bridge_port, npc_count, ...}.
signal ready(info: Dictionary)
## The daemon died; restarting says whether it will be started again.
signal exited(restarting: bool)
## It could not start or died once too often: the daemon's start-up code (model_missing,
## data_dir_locked, cast_damaged, ...), "exited" or "DEADLINE_EXCEEDED", and why.
signal failed(code: String, message: String)

const POLL_SECONDS := 0.25

## The bundle folder (absolute).
var bundle_dir: String = ""
## Sessions and locks (absolute); empty: the daemon's default.
var data_dir: String = ""
## More daemon options, such as ["--device", "cuda"].
var extra_args: PackedStringArray = PackedStringArray()
var max_restarts: int = 3
var restart_delay: float = 1.0
## Loading a model takes a while on a slow PC.
var ready_timeout: float = 180.0
## The running daemon's process id; -1 when none runs.
var pid: int = -1
## The readiness of the running daemon; empty until it serves.
var info: Dictionary = {}
var restarts: int = 0

var _ready_file: String = ""
var _waited: float = 0.0
var _poll_in: float = 0.0
var _restart_in: float = -1.0


## The folder of a bundle named by setting: an absolute path as it is; otherwise the
## project folder's child in the editor and the executable's folder's in an exported game
## (copy the bundle beside the game's executable: res:// is inside the .pck).
static func bundle_folder(setting: String) -> String:
	if setting.is_absolute_path() and not setting.begins_with("res://"):
		return setting
	var relative := setting.trim_prefix("res://")
	if OS.has_feature("editor"):
		return ProjectSettings.globalize_path("res://" + relative)
	return OS.get_executable_path().get_base_dir().path_join(relative)


## Starts the daemon; false (and failed) when the bundle cannot be read or launched.
func start() -> bool:
	_restart_in = -1.0
	return _launch()


## Kills the daemon now; no restart follows.
func stop() -> void:
	_restart_in = -1.0
	if pid > 0 and OS.is_process_running(pid):
		OS.kill(pid)
	pid = -1
	info = {}


func poll(delta: float) -> void:
	if pid < 0:
		if _restart_in >= 0.0:
			_restart_in -= delta
			if _restart_in < 0.0:
				_launch()
		return
	_poll_in -= delta
	_waited += delta
	if _poll_in > 0.0:
		return
	_poll_in = POLL_SECONDS
	if info.is_empty():
		_check_ready()
	elif not OS.is_process_running(pid):
		_on_died()


func _command() -> PackedStringArray:
	var path := bundle_dir.path_join("bundle.json")
	if not FileAccess.file_exists(path):
		return PackedStringArray()
	var spec: Variant = JSON.parse_string(FileAccess.get_file_as_string(path))
	if typeof(spec) != TYPE_DICTIONARY or typeof(spec.get("command")) != TYPE_ARRAY:
		return PackedStringArray()
	var command := PackedStringArray()
	for arg in spec["command"]:
		command.append(str(arg).replace("{bundle}", bundle_dir))
	return command


func _launch() -> bool:
	var command := _command()
	if command.is_empty():
		failed.emit("NOT_FOUND", "no npc-runtime bundle at %s (bundle.json)" % bundle_dir)
		return false
	var state_dir := data_dir if not data_dir.is_empty() else OS.get_user_data_dir()
	DirAccess.make_dir_recursive_absolute(state_dir)
	_ready_file = state_dir.path_join("npc-runtime-ready.json")
	if FileAccess.file_exists(_ready_file):
		DirAccess.remove_absolute(_ready_file)
	var args := command.slice(1)
	args.append_array(["--port", "0", "--bridge-port", "0", "--ready-file", _ready_file])
	args.append_array(["--parent-pid", str(OS.get_process_id())])
	if not data_dir.is_empty():
		args.append_array(["--data-dir", data_dir])
	args.append_array(extra_args)
	pid = OS.create_process(command[0], args)
	_waited = 0.0
	_poll_in = POLL_SECONDS
	info = {}
	if pid < 0:
		failed.emit("NOT_FOUND", "cannot start the npc-runtime daemon %s" % command[0])
		return false
	return true


func _check_ready() -> void:
	if FileAccess.file_exists(_ready_file):
		var record: Variant = JSON.parse_string(FileAccess.get_file_as_string(_ready_file))
		if typeof(record) == TYPE_DICTIONARY and record.get("event") == "ready":
			info = record
			ready.emit(info)
			return
		if typeof(record) == TYPE_DICTIONARY and record.get("event") == "error":
			pid = -1  # a start-up error: starting again would fail the same way
			failed.emit(str(record.get("code", "")), str(record.get("message", "")))
			return
	if not OS.is_process_running(pid):
		pid = -1
		failed.emit("exited", "the daemon exited before it was ready (see its output)")
	elif _waited > ready_timeout:
		OS.kill(pid)
		pid = -1
		failed.emit("DEADLINE_EXCEEDED", "the daemon was not ready in %d s" % ready_timeout)


func _on_died() -> void:
	pid = -1
	info = {}
	if restarts < max_restarts:
		restarts += 1
		_restart_in = restart_delay * pow(2.0, restarts - 1)
		exited.emit(true)
		return
	exited.emit(false)
	failed.emit("exited", "the daemon died and was restarted %d times already" % restarts)
