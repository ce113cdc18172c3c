"""FaceReko's Piper renderer: loads the voice once, then renders one phrase per request.

Usage: python render.py MODEL.onnx
Each request is one JSON line on stdin: {"text": "...", "length_scale": 1.0}.
Each answer is one JSON line on stdout: {"wav": "<base64 of a WAV file>"} or {"error": "..."}.
It ends when stdin closes.
"""
import base64
import io
import json
import sys
import wave

from piper import PiperVoice, SynthesisConfig


def main():
    voice = PiperVoice.load(sys.argv[1])
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            request = json.loads(line)
            buffer = io.BytesIO()
            with wave.open(buffer, "wb") as wav:
                config = SynthesisConfig(length_scale=request.get("length_scale"))
                voice.synthesize_wav(request["text"], wav, syn_config=config)
            answer = {"wav": base64.b64encode(buffer.getvalue()).decode("ascii")}
        except Exception as error:  # the daemon shows it; the renderer keeps going
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
