"""Gather the results.json files of experiment runs into the course's comparison table
and bar chart.

    python experiments/compare.py runs/*/results.json [--out runs/comparison]

Every trained model of every run is one row (experiment, run, model, parameters,
epochs, test loss and accuracy, training time). Writes comparison.md, comparison.json
and comparison.png.
"""
import argparse
import json
import math
import pathlib

from jaxdl import plots

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("results", nargs="+", type=pathlib.Path, help="results.json files (or work directories)")
parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/comparison"))
args = parser.parse_args()

rows = []
for path in args.results:
    path = path / "results.json" if path.is_dir() else path
    if not path.is_file():
        parser.error(f"{path} does not exist (run the experiment first, or pass its --workdir)")
    result = json.loads(path.read_text())
    for run, record in result["runs"].items():
        rows.append({"experiment": result["experiment"], "run": run, "model_name": record["model"],
                     "params": record["params"], "epochs": record["epochs"],
                     "model_loss": record.get("model_loss", math.nan), "model_acc": record.get("model_acc", math.nan),
                     "train_time_s": record["train_time_s"],
                     "device": f"{result['device_count']} x {result['device_kind']}"})

args.out.mkdir(parents=True, exist_ok=True)
header = "| experiment | run | model | params | epochs | test loss | test acc (%) | train time (s) | device |"
lines = [header, "|" + "---|" * 9]
for r in rows:
    acc = "—" if math.isnan(r["model_acc"]) else f"{r['model_acc']:.2f}"
    lines.append(f"| {r['experiment']} | {r['run']} | {r['model_name']} | {r['params']:,} | {r['epochs']} | "
                 f"{r['model_loss']:.4f} | {acc} | {r['train_time_s']:.1f} | {r['device']} |")
(args.out / "comparison.md").write_text("\n".join(lines) + "\n")
(args.out / "comparison.json").write_text(json.dumps(rows, indent=2))
classified = [{**r, "model_name": f"{r['experiment']}/{r['run']}"} for r in rows if not math.isnan(r["model_acc"])]
if classified:
    plots.plot_comparison(classified, args.out / "comparison.png", title="Test accuracy of every run")
print("\n".join(lines))
print(f"\nwrote {args.out}/comparison.md, comparison.json" + (", comparison.png" if classified else ""))
