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


def test_a_token_with_no_usable_model_lists_an_empty_data_array(gateway):
    import json
    import urllib.request

    key = gateway.token("no-models", models=["a-model-no-channel-serves"])
    request = urllib.request.Request(f"{gateway.base_url}/models", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response) == {"object": "list", "data": []}
