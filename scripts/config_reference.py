"""Print docs/config.md from the declarations in autoencoders/config_keys.py:
`python scripts/config_reference.py > docs/config.md` (tests/test_declarations.py checks it)."""

from autoencoders.config_keys import reference_table

SECTIONS = [
    ("", "Top level", "Overridden as `key=value`, e.g. `ae-train seed=1`."),
    (
        "model",
        "model",
        "The keys every model shares come first (conf/shared/model.yaml); a model's "
        "own keys say which model reads them. `ae-train model=vae model.beta=4`.",
    ),
    (
        "net",
        "model.net: the network families",
        "The network is the `model/net` group (conf/model/net/): `ae-train model=vae model/net=conv`. "
        "`net.<family>.<key>` is `model.net.<key>` once that family is chosen, e.g. "
        "`model/net=mlp model.net.hidden=[1200,1200]`; `model.net.decoder.<key>=...` sets the decoder's "
        "apart. A `_target_` of your own takes the keys its class takes (docs/models.md, Networks).",
    ),
    ("data", "data", "`ae-train data=mnist data.batch_size=128`."),
    (
        "trainer",
        "trainer",
        "A free mapping of `lightning.Trainer` arguments: these are the ones checked at "
        "start-up; any other argument is passed on with `++trainer.<name>=<value>`.",
    ),
    ("logging", "logging", "What goes to TensorBoard beyond the scalars (docs/tensorboard.md)."),
    ("eval", "eval", "Evaluation after testing and in `ae-eval` (docs/evaluation.md)."),
    (
        "logger",
        "logger",
        "Loggers beside TensorBoard, chosen with `logger=csv`, `logger=mlflow`, `logger=wandb` or a "
        "list, `logger=[csv,mlflow]`; their keys exist once the logger is chosen (docs/loggers.md).",
    ),
]

print("# Config keys\n")
print("Every key `ae-train` reads, with its default and what it accepts. A value outside what a key")
print("accepts, or a key no model or dataset reads, stops the run before anything is written, with")
print("one message naming the key. This page is generated from `autoencoders/config_keys.py`.\n")
for section, title, intro in SECTIONS:
    print(f"## {title}\n\n{intro}\n\n{reference_table(section)}\n")
