def test_gateway_starts_and_answers_simulated_chat(gateway):
    import json
    import urllib.request

    gateway.channel("sim", "simulator", ["sim-model"])
    key = gateway.token("smoke")
    request = urllib.request.Request(
        f"{gateway.base_url}/chat/completions",
        data=json.dumps({"model": "sim-model", "messages": [{"role": "user", "content": "Hi"}]}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.load(response)
    assert answer["choices"][0]["message"]["content"] == "Simulated reply to: Hi"
    assert answer["system_fingerprint"] == "st-ai-simulator"
