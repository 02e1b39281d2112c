using System.Collections.Generic;
using NUnit.Framework;

namespace NpcRuntime.Tests
{
    public class JsonTests
    {
        [Test]
        public void RoundTripsFrames()
        {
            var frame = new Dictionary<string, object>
            {
                { "id", "7" }, { "method", "Speak" },
                { "request", new Dictionary<string, object> { { "text", "Say \"hi\"\n\u00e9\u0001" }, { "n", 3 }, { "x", 0.5 }, { "ok", true }, { "none", null }, { "l", new List<object> { 1, "a" } } } },
            };
            var parsed = (Dictionary<string, object>)Json.Parse(Json.Serialize(frame));
            var request = (Dictionary<string, object>)parsed["request"];
            Assert.AreEqual("7", parsed["id"]);
            Assert.AreEqual("Say \"hi\"\n\u00e9\u0001", request["text"]);
            Assert.AreEqual(3.0, request["n"]);
            Assert.AreEqual(0.5, request["x"]);
            Assert.AreEqual(true, request["ok"]);
            Assert.IsNull(request["none"]);
            Assert.AreEqual(2, ((List<object>)request["l"]).Count);
        }

        [Test]
        public void ParsesEscapesAndNumbers()
        {
            var parsed = (Dictionary<string, object>)Json.Parse(" {\"a\": \"\\u00e9\\/\\t\", \"b\": -1.5e2, \"c\": [], \"d\": {}} ");
            Assert.AreEqual("\u00e9/\t", parsed["a"]);
            Assert.AreEqual(-150.0, parsed["b"]);
        }

        [Test]
        public void RefusesMalformedJson()
        {
            Assert.Throws<System.FormatException>(() => Json.Parse("{\"a\": }"));
            Assert.Throws<System.FormatException>(() => Json.Parse("[1, 2"));
            Assert.Throws<System.FormatException>(() => Json.Parse("{} x"));
        }
    }
}
