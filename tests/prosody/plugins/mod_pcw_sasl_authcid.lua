-- Accept a SASL PLAIN authcid written as a bare JID ("local@this.host"), as the
-- Genesys Cloud streaming service does (docs/protocol.rst §2.3).  Stock Prosody runs
-- nodeprep over the whole authcid, which refuses the "@" with malformed-request;
-- this rewrites the payload to the bare local part before mod_saslauth sees it.
local base64 = require "util.encodings".base64;

local function rewrite(event)
	local session, stanza = event.origin, event.stanza;
	if session.type ~= "c2s_unauthed" or stanza.attr.mechanism ~= "PLAIN" then
		return;
	end
	local raw = base64.decode(stanza:get_text() or "");
	if not raw then return; end
	local authzid, authcid, password = raw:match("^([^%z]*)%z([^%z]+)%z(.*)$");
	if not authcid then return; end
	local node, host = authcid:match("^([^@/]+)@([^@/]+)$");
	if not node or host:lower() ~= module.host then return; end
	-- An authzid naming this very user is what some clients send; it adds nothing.
	if authzid == authcid then authzid = ""; end
	for i = #stanza, 1, -1 do stanza[i] = nil; end
	stanza:text(base64.encode(authzid .. "\0" .. node .. "\0" .. password));
	module:log("debug", "SASL PLAIN authcid %s@%s taken as %s", node, host, node);
end

module:hook("stanza/urn:ietf:params:xml:ns:xmpp-sasl:auth", rewrite, 100);
