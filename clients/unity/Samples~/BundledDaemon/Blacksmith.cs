using NpcRuntime;
using UnityEngine;

/// <summary>
/// The daemon shipped inside the game: put the folder written by `npc-runtime bundle`
/// at Assets/StreamingAssets/npc-runtime, add an NpcRuntimeServer to one GameObject and
/// this to another. It gives the GameObject an NpcVoice for Brann, prints his reply
/// sentence by sentence, and asks him again with Return. The daemon starts with the
/// scene and stops when the game quits.
/// </summary>
public class Blacksmith : MonoBehaviour
{
    public string line = "Can you mend my sword?";

    NpcVoice brann;

    void Awake()
    {
        brann = gameObject.AddComponent<NpcVoice>();
        brann.npcId = "brann";
        brann.sessionId = "save1";
        brann.maxTokens = 60;
        brann.onSentence.AddListener(sentence => Debug.Log("Brann: " + sentence));
        brann.onError.AddListener((code, message) => Debug.LogWarning(code + ": " + message));
    }

    void Start()
    {
        brann.Speak(line);  // sent as soon as the daemon is ready
    }

    void Update()
    {
        if (Input.GetKeyDown(KeyCode.Return)) brann.Speak(line);
    }
}
