-- Deliver a chat/normal <message/> to a user's bare JID to every connected
-- resource of that user, the sender included, whether or not they sent presence,
-- as the Genesys Cloud streaming service does for XEP-0353 (docs/protocol.rst §2.4, §3).
-- Stock Prosody delivers only to resources with available presence and answers
-- service-unavailable when there are none.
local jid_bare = require "util.jid".bare;

local function fan_out(event)
	local origin, stanza = event.origin, event.stanza;
	local t = stanza.attr.type;
	if t == "error" or t == "groupchat" or t == "headline" then
		return;
	end
	local to = stanza.attr.to;
	if not to then
		-- Prosody strips the "to" of a message a client sends to its own bare JID;
		-- the service keeps it, and so do we.
		if not (origin.username and origin.host) then return; end
		to = origin.username .. "@" .. origin.host;
		stanza.attr.to = to;
	end
	local user = prosody.bare_sessions[jid_bare(to)];
	if not user or not next(user.sessions) then
		return; -- nobody connected: stock handling (service-unavailable)
	end
	for _, session in pairs(user.sessions) do
		if session.send then session.send(stanza); end
	end
	return true;
end

module:hook("message/bare", fan_out, 100);
module:hook("message/self", fan_out, 100);
