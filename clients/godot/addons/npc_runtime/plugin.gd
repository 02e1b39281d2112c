@tool
extends EditorPlugin
## Registers the NpcRuntime autoload and its project settings:
## npc_runtime/url (the daemon's engine bridge), npc_runtime/token (Bearer token,
## empty when the daemon runs without --token) and npc_runtime/bundle_path (a folder
## written by `npc-runtime bundle` that the autoload starts; empty: connect to url).

const AUTOLOAD_NAME := "NpcRuntime"
const AUTOLOAD_PATH := "res://addons/npc_runtime/npc_runtime.gd"
const URL_SETTING := "npc_runtime/url"
const TOKEN_SETTING := "npc_runtime/token"
const BUNDLE_SETTING := "npc_runtime/bundle_path"
const DEFAULT_URL := "ws://127.0.0.1:50052"


func _enter_tree() -> void:
	_add_setting(URL_SETTING, DEFAULT_URL, PROPERTY_HINT_NONE)
	_add_setting(TOKEN_SETTING, "", PROPERTY_HINT_PASSWORD)
	_add_setting(BUNDLE_SETTING, "", PROPERTY_HINT_GLOBAL_DIR)


func _enable_plugin() -> void:
	add_autoload_singleton(AUTOLOAD_NAME, AUTOLOAD_PATH)


func _disable_plugin() -> void:
	remove_autoload_singleton(AUTOLOAD_NAME)


func _add_setting(setting: String, default_value: String, hint: int) -> void:
	if not ProjectSettings.has_setting(setting):
		ProjectSettings.set_setting(setting, default_value)
	ProjectSettings.set_initial_value(setting, default_value)
	ProjectSettings.add_property_info(
		{"name": setting, "type": TYPE_STRING, "hint": hint, "hint_string": ""}
	)
	ProjectSettings.set_as_basic(setting, true)
