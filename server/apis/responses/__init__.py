"""OpenAI's Responses API as pure conversions to and from st-ai's chat relay: a request
body to a chat request (request.py, with history.py for `previous_response_id`), a chat
completion to a `response` object (answer.py), chat chunks to the typed stream events
(stream.py). No HTTP, protobuf or database here."""
