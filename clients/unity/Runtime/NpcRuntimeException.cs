using System;

namespace NpcRuntime
{
    /// <summary>
    /// A call the daemon refused or that could not reach it. <see cref="Code"/> is the bridge's
    /// status name (NOT_FOUND, INVALID_ARGUMENT, CANCELLED, ...; UNAVAILABLE when the daemon
    /// cannot be reached) and the message says what to fix.
    /// </summary>
    public class NpcRuntimeException : Exception
    {
        public string Code { get; private set; }
        public string StatusMessage { get; private set; }

        public NpcRuntimeException(string code, string message, Exception inner = null)
            : base(code + ": " + message, inner)
        {
            Code = code;
            StatusMessage = message;
        }
    }
}
