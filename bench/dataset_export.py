"""Validate + count tokens + export a large chat dataset, vs tokenizing the same texts with tiktoken alone.

    python bench/dataset_export.py [--examples 100000] [--runs 3] [--sizes 25000,50000,100000]

A JSONL file of chat examples (~300 tokens each: a fixed system prompt, a question, a reply of English-like text
sampled from the project's own texts, every question different) is generated in a temporary folder. The subject
is `playground.datasets.exports.export_file(src, out, "openai-chat")`: one streaming pass that reads and checks every line
(the reference format checks, duplicates and near-duplicates, token limits, system prompts, order leaks, leaked
words), counts its tokens for the statistics, and writes it out; the output is kept only without errors.

Baselines, measured interleaved with the subject:
  floor      a bare loop over the texts (already in memory) that only tokenizes them: len(enc.encode(text))
  floor+read the same loop reading the file and decoding each line's JSON first
Targets: subject CPU time / floor CPU time <= 2x (CPU time, not wall time: these machines are shared and noisy;
wall times are printed too), and peak memory flat as the file grows: each size is exported in a fresh process
whose peak RSS (VmHWM) must stay within 1.25x of the smallest size's, the file being 4x larger.
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TIME_TARGET = 2.0
MEMORY_TARGET = 1.25
SYSTEM = "You answer questions about the town of Brindlecombe, briefly and kindly."
MODEL = "gpt-4o-mini"


# --- the data ------------------------------------------------------------------------------------------------


def vocabulary() -> tuple[list[str], list[int]]:
    """Words of the project's own English texts, with their counts (a natural, Zipf-like distribution)."""
    texts = [p.read_text(encoding="utf-8") for folder in ("personas", "datasets") for p in (ROOT / folder).iterdir()]
    texts.append((ROOT / "README.md").read_text(encoding="utf-8"))
    counts: dict[str, int] = {}
    for word in re.findall(r"[A-Za-z][a-z']*", " ".join(texts)):
        counts[word.lower()] = counts.get(word.lower(), 0) + 1
    return list(counts), list(counts.values())


def generate(path: Path, n: int, seed: int = 7) -> None:
    words, weights = vocabulary()
    rng = random.Random(seed)
    cumulative, total = [], 0
    for w in weights:
        total += w
        cumulative.append(total)
    endings = ["by", "wick", "ton", "ley", "more"]
    names = [f"{rng.choice('BCDFGHKLMNPRSTVW')}{rng.choice('aeiou')}{rng.choice('lmnrst')}{rng.choice(endings)}"
             for _ in range(5000)]  # the rare words of real text: names

    def sentence(k: int) -> str:
        chosen = rng.choices(words, cum_weights=cumulative, k=k)
        if rng.random() < 0.4:
            chosen.insert(rng.randrange(k), rng.choice(names))
        if k > 8 and rng.random() < 0.5:
            chosen[k // 2] += ","
        return " ".join(chosen).capitalize() + "."

    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            question = f"{sentence(rng.randint(10, 16))} {sentence(rng.randint(8, 14))[:-1]} {i}?"
            reply = " ".join(sentence(rng.randint(12, 22)) for _ in range(rng.randint(10, 13)))
            f.write(json.dumps({"messages": [{"role": "system", "content": SYSTEM},
                                             {"role": "user", "content": question},
                                             {"role": "assistant", "content": reply}]}) + "\n")


def head(source: Path, target: Path, n: int) -> None:
    with source.open("rb") as src, target.open("wb") as out:
        for i, line in enumerate(src):
            if i >= n:
                break
            out.write(line)


# --- the measured runs ---------------------------------------------------------------------------------------


def timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def floor(texts: list[str], encode) -> int:
    return sum(len(encode(text)) for text in texts)


def floor_reading(path: Path, encode) -> int:
    tokens = 0
    with path.open("rb") as f:
        for line in f:
            for message in json.loads(line)["messages"]:
                tokens += len(encode(message["content"]))
    return tokens


def subject(path: Path, out: Path):
    from playground.datasets.exports import export_file

    return export_file(path, out, "openai-chat", model=MODEL)


def child_memory(path: Path, out: Path) -> None:
    """Run in a fresh process: print RSS after warming up (imports, encoding) and the peak after one export."""
    from playground.datasets.exports import export_file

    warm = out.with_name("warm.jsonl")
    head(path, warm, 50)
    export_file(warm, out, "openai-chat", model=MODEL)
    before = rss_kb("VmRSS")
    result = export_file(path, out, "openai-chat", model=MODEL)
    print(json.dumps({"before_kb": before, "peak_kb": rss_kb("VmHWM"), "written": result.written}))


def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory(path: Path, out: Path, env: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child-memory", str(path), str(out)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100_000, help="examples in the timed file (default 100000)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs of each (default 3)")
    parser.add_argument("--sizes", default="25000,50000,100000", help="file sizes for the memory check")
    parser.add_argument("--child-memory", nargs=2, metavar=("FILE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_memory:
        child_memory(Path(args.child_memory[0]), Path(args.child_memory[1]))
        return 0

    started = time.monotonic()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="playground-dataset-bench-") as tmp:
        base = Path(tmp)
        env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(base / "tiktoken"), PLAYGROUND_HOME=str(base / "home"))
        os.environ.update(env)
        from playground.core.tokens import encoding, encoding_name

        largest = max([args.examples, *sizes])
        data = base / "data.jsonl"
        seconds, _, _ = timed(lambda: generate(data, largest))
        path = base / f"data-{args.examples}.jsonl"
        head(data, path, args.examples)
        encode = encoding(encoding_name(MODEL)[0]).encode
        texts = [m["content"] for line in path.open("rb") for m in json.loads(line)["messages"]]
        tokens = floor(texts, encode)
        print(f"{args.examples:,} examples, {tokens / args.examples:.0f} tokens each on average "
              f"({MODEL}, messages only), {path.stat().st_size / 1e6:.0f} MB; generated in {seconds:.0f} s", flush=True)

        runs: dict[str, list[tuple[float, float]]] = {"floor": [], "floor+read": [], "subject": []}
        out = base / "out.jsonl"
        subject(path, out)  # warm-up: the punctuation table, numpy, the page cache
        for i in range(args.runs):
            order = ["floor", "floor+read", "subject"]
            order = order[i % 3:] + order[:i % 3]
            for what in order:
                if what == "floor":
                    wall, cpu, _ = timed(lambda: floor(texts, encode))
                elif what == "floor+read":
                    wall, cpu, _ = timed(lambda: floor_reading(path, encode))
                else:
                    wall, cpu, result = timed(lambda: subject(path, out))
                    errors = [f for f in result.findings if f.severity == "error"]
                    assert result.written == args.examples and not errors, (result.written, errors[:3])
                runs[what].append((wall, cpu))
            print(f"  run {i + 1}/{args.runs}: " + "   ".join(
                f"{name} {runs[name][-1][1]:.1f} s cpu ({runs[name][-1][0]:.1f} s wall)" for name in runs), flush=True)
        texts.clear()  # free the floor's copy before the memory runs

        print("  peak memory by file size (a fresh process each):", flush=True)
        peaks = {}
        for n in sizes:
            part = base / f"data-{n}.jsonl"
            head(data, part, n)
            peaks[n] = memory(part, base / "out-mem.jsonl", env)
            print(f"    {n:>7,} examples ({part.stat().st_size / 1e6:.0f} MB): peak RSS "
                  f"{peaks[n]['peak_kb'] / 1024:.0f} MB", flush=True)

    med = {name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for name, r in runs.items()}
    print()
    print(f"Validate + count tokens + export {args.examples:,} examples: {args.runs} runs each, interleaved")
    print()
    header = f"{'':<52} {'cpu (s)':>8} {'wall (s)':>9} {'cpu min-max':>13}"
    print(header)
    print("-" * len(header))
    labels = {"subject": "export_file: read, validate, count, write (subject)",
              "floor": "tokenize the texts only (floor)", "floor+read": "read + decode JSON + tokenize"}
    for name in ("subject", "floor", "floor+read"):
        cpus = [c for _, c in runs[name]]
        print(f"{labels[name]:<52} {med[name][1]:>8.2f} {med[name][0]:>9.2f} {min(cpus):>6.2f}-{max(cpus):<6.2f}")
    ratio = med["subject"][1] / med["floor"][1]
    time_ok = ratio <= TIME_TARGET
    print()
    print(f"subject / floor (cpu)        {ratio:.2f}x   target <= {TIME_TARGET:.1f}x   {'PASS' if time_ok else 'MISS'}")
    print(f"subject / floor+read (cpu)   {med['subject'][1] / med['floor+read'][1]:.2f}x   (for reference)")
    print(f"subject / floor (wall)       {med['subject'][0] / med['floor'][0]:.2f}x   (for reference)")
    small, large = min(sizes), max(sizes)
    growth = peaks[large]["peak_kb"] / peaks[small]["peak_kb"]
    memory_ok = growth <= MEMORY_TARGET
    per_example = (peaks[large]["peak_kb"] - peaks[small]["peak_kb"]) * 1024 / (large - small)
    print(f"peak RSS {large:,} / {small:,} examples   {growth:.2f}x   target <= {MEMORY_TARGET:.2f}x   "
          f"{'PASS' if memory_ok else 'MISS'}   ({per_example:.0f} bytes more per extra example; "
          f"working memory above the warmed-up process: "
          + ", ".join(f"{(p['peak_kb'] - p['before_kb']) / 1024:.0f} MB" for p in peaks.values()) + ")")
    print()
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0 if time_ok and memory_ok else 1


if __name__ == "__main__":
    sys.exit(main())
