using System.Collections;
using System.Text;
using NpcRuntime;
using UnityEngine;

/// <summary>
/// The player talks to two NPCs of the demo village, Brann the smith and Marla the
/// innkeeper, in one session: Marla hears what Brann said. Add it to any GameObject, start
/// `npc-runtime serve`, press Play. Replies stream into the on-screen log word by word;
/// Escape cancels the reply in flight.
/// </summary>
public class TavernScene : MonoBehaviour
{
    public string bridgeUrl = NpcRuntimeClient.DefaultUrl;
    public string sessionId = "tavern";
    public int maxTokens = 60;

    NpcRuntimeClient client;
    SpeakReply current;
    readonly StringBuilder log = new StringBuilder();
    string playerLine = "Can you mend my sword?";
    string npcId = "brann";

    void Awake()
    {
        client = new NpcRuntimeClient(bridgeUrl, UnityMainThreadDispatcher.Create());
    }

    IEnumerator Start()
    {
        // A coroutine walk through the scene: one line to each NPC, one after the other.
        yield return Say("brann", "Can you mend my sword?");
        yield return Say("marla", "Is the smith always this grumpy?");
    }

    /// <summary>Speaks to an NPC; yield the result in a coroutine to wait for the reply.</summary>
    SpeakReply Say(string npc, string text)
    {
        log.Append("\nYou: ").Append(text).Append('\n');
        var reply = client.Speak(npc, text, sessionId, new SpeakOptions { MaxTokens = maxTokens });
        bool named = false;
        reply.OnToken += token =>
        {
            if (!named) { log.Append(reply.NpcName).Append(':'); named = true; }
            log.Append(token);
        };
        reply.OnSentence += sentence => Debug.Log("subtitle: " + sentence.Text);
        reply.OnCompleted += final => log.Append('\n');
        reply.OnError += error => log.Append("\n[").Append(error.Code).Append("] ").Append(error.StatusMessage).Append('\n');
        current = reply;
        return reply;
    }

    void Update()
    {
        if (current != null && !current.IsDone && Input.GetKeyDown(KeyCode.Escape)) current.Cancel();
    }

    void OnGUI()
    {
        GUILayout.BeginArea(new Rect(10, 10, Screen.width - 20, Screen.height - 20));
        GUILayout.Label(log.ToString());
        GUILayout.BeginHorizontal();
        if (GUILayout.Button(npcId == "brann" ? "Talking to Brann" : "Talking to Marla", GUILayout.Width(150)))
            npcId = npcId == "brann" ? "marla" : "brann";
        playerLine = GUILayout.TextField(playerLine);
        GUI.enabled = current == null || current.IsDone;
        if (GUILayout.Button("Say", GUILayout.Width(80)) && playerLine.Trim().Length > 0) Say(npcId, playerLine);
        GUI.enabled = true;
        GUILayout.EndHorizontal();
        GUILayout.EndArea();
    }

    void OnDestroy()
    {
        client.Dispose();
    }
}
