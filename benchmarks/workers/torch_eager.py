"""Benchmark worker: the lecture's model in plain PyTorch eager, as pytorch/examples writes it.

NCHW tensors, nn.Sequential, Adam(lr=1e-3), CrossEntropyLoss on logits, batch
128, a shuffled permutation of in-memory tensors each epoch (no DataLoader).
'same' max pooling (11 -> 6) is ceil_mode=True: the same windows as TF's.
Runs in the project's .venv.

    python benchmarks/workers/torch_eager.py --data benchmarks/out/synthetic-60000.npz \
        --result /tmp/r.json --epochs 3
"""
from __future__ import annotations

import numpy as np

import common
import lecture
import variant_model

SYSTEM = "torch-eager"


def build_model(torch):
    nn = torch.nn
    channels = lecture.INPUT_SHAPE[2]
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3), nn.ReLU(),    # (B, 1, 28, 28) -> (B, 32, 26, 26)
        nn.MaxPool2d(2),                          # -> (B, 32, 13, 13)
        nn.Conv2d(32, 64, 3), nn.ReLU(),          # -> (B, 64, 11, 11)
        nn.MaxPool2d(2, ceil_mode=True),          # -> (B, 64, 6, 6), Keras padding='same'
        nn.Flatten(),                             # -> (B, 2304)
        nn.Linear(lecture.flatten_size(), 64), nn.ReLU(),
        nn.Linear(64, lecture.NUM_CLASSES),       # logits; softmax lives in the loss
    )


def body(result: dict, args) -> None:
    try:
        import torch
    except ImportError as e:
        raise common.Unavailable(f"ImportError: {e}") from e
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = common.load_data(args)
    # (N, 28, 28, 1) -> (N, 1, 28, 28): NCHW as in pytorch/examples
    x = torch.from_numpy(np.ascontiguousarray(data["x_train"].transpose(0, 3, 1, 2)))
    y = torch.from_numpy(data["y_train"])
    regularized = []
    if args.mode == "variant":  # an improve.yaml variant, ported as naively
        recipe = variant_model.load(args.variant_file, args.variant)
        if len(recipe["input_shape"]) == 1:
            x = x.reshape(len(x), -1)
        args.batch_size = recipe["batch_size"]
        model, regularized = variant_model.torch_model(torch, recipe)
        optimizer = variant_model.torch_optimizer(torch, recipe, model.parameters())
    else:
        model = build_model(torch)
        optimizer = torch.optim.Adam(model.parameters(), lr=lecture.LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss()

    @torch.inference_mode()
    def predict(images: np.ndarray, batch: int = 1000) -> np.ndarray:
        model.eval()
        t = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        out = torch.cat([torch.softmax(model(t[i:i + batch]), dim=1) for i in range(0, len(t), batch)])
        return out.numpy()

    clock = common.EpochClock(predict, data.get("x_val"), data.get("y_val"))
    train_loss, train_accuracy = [], []
    for _ in range(args.epochs):
        clock.begin()
        model.train()
        order = torch.randperm(len(x))
        loss_sum, correct = 0.0, 0
        for i in range(0, len(x), args.batch_size):
            idx = order[i:i + args.batch_size]
            xb, yb = x[idx], y[idx]
            optimizer.zero_grad()
            logits = model(xb)
            loss = loss_fn(logits, yb)
            if regularized:
                loss = loss + variant_model.penalty(regularized)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
        train_loss.append(loss_sum / len(x))
        train_accuracy.append(correct / len(x))
        clock.end()

    result.update(clock.as_dict(), train_loss=train_loss, train_accuracy=train_accuracy,
                  params=sum(p.numel() for p in model.parameters()),
                  threads_used=torch.get_num_threads(), versions={"torch": torch.__version__},
                  layout="NCHW")
    if args.mode == "epoch":
        xs = data["x_train"]
        common.measure_serving(result, args, xs, lambda b: predict(b, args.inference_batch), predict)


if __name__ == "__main__":
    args = common.parse_args(SYSTEM)
    common.run(SYSTEM, args, lambda result: body(result, args))
