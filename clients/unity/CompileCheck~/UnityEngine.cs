// The few UnityEngine declarations the package's Unity-only files use, so that
// run_tests.sh can compile them (with UNITY_5_3_OR_NEWER) where no Unity is installed.
// Declarations only: nothing here runs, and Unity never sees this folder (its name ends
// in '~'). A real Unity build compiles the same files against the real UnityEngine.
using System;

namespace UnityEngine
{
    public enum HideFlags { None = 0, HideInHierarchy = 1 }

    public class Object
    {
        public HideFlags hideFlags { get; set; }
        public static void DontDestroyOnLoad(Object target) { }
        public static T FindObjectOfType<T>() where T : Object { return null; }
    }

    public class Component : Object
    {
        public GameObject gameObject { get { return null; } }
    }
    public class Behaviour : Component { }
    public class MonoBehaviour : Behaviour { }

    public sealed class GameObject : Object
    {
        public GameObject(string name) { }
        public T AddComponent<T>() where T : Component { return null; }
    }

    public static class Application
    {
        public static string streamingAssetsPath { get { return ""; } }
        public static string persistentDataPath { get { return ""; } }
    }

    public static class Debug
    {
        public static void Log(object message) { }
        public static void LogWarning(object message) { }
        public static void LogError(object message) { }
    }

    public enum KeyCode { Escape = 27, Return = 13 }

    public static class Input { public static bool GetKeyDown(KeyCode key) { return false; } }

    public struct Rect { public Rect(float x, float y, float width, float height) { } }

    public static class Screen
    {
        public static int width { get { return 0; } }
        public static int height { get { return 0; } }
    }

    public sealed class GUILayoutOption { }

    public static class GUI { public static bool enabled { get; set; } }

    public static class GUILayout
    {
        public static void BeginArea(Rect screenRect) { }
        public static void EndArea() { }
        public static void BeginHorizontal(params GUILayoutOption[] options) { }
        public static void EndHorizontal() { }
        public static void Label(string text, params GUILayoutOption[] options) { }
        public static bool Button(string text, params GUILayoutOption[] options) { return false; }
        public static string TextField(string text, params GUILayoutOption[] options) { return text; }
        public static GUILayoutOption Width(float width) { return null; }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class TooltipAttribute : Attribute { public TooltipAttribute(string tooltip) { } }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class DisallowMultipleComponent : Attribute { }
}

namespace UnityEngine.Events
{
    public class UnityEvent
    {
        public void Invoke() { }
        public void AddListener(UnityAction call) { }
    }

    public class UnityEvent<T0>
    {
        public void Invoke(T0 arg0) { }
        public void AddListener(UnityAction<T0> call) { }
    }

    public class UnityEvent<T0, T1>
    {
        public void Invoke(T0 arg0, T1 arg1) { }
        public void AddListener(UnityAction<T0, T1> call) { }
    }

    public delegate void UnityAction();
    public delegate void UnityAction<T0>(T0 arg0);
    public delegate void UnityAction<T0, T1>(T0 arg0, T1 arg1);
}
