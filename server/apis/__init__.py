"""The client APIs st-ai speaks besides chat completions, translated to and from chat."""
