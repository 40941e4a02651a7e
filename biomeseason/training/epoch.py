"""One training epoch: circular soft month targets, losses masked where a label is missing, and the pass
over the training batches (``train_one_epoch``). ``train`` re-exports every name here.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import TrainConfig

# ---------------------------------------------------------------- losses

def circular_soft_targets(month: torch.Tensor, num_months: int, sigma: float) -> torch.Tensor:
    """(B,) month indices -> (B, num_months) target distributions.

    A Gaussian over the circular distance, so December also teaches January a
    little; sigma=0 gives one-hot targets.
    """
    if sigma <= 0:
        return F.one_hot(month, num_months).float()
    steps = torch.arange(num_months, device=month.device)
    d = (steps[None, :] - month[:, None]).abs()
    d = torch.minimum(d, num_months - d).float()  # (B, M)
    w = torch.exp(-0.5 * (d / sigma) ** 2)
    return w / w.sum(dim=1, keepdim=True)


def masked_losses(out: dict, biome: torch.Tensor, month: torch.Tensor, month_sigma: float,
                  biome_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Biome and month losses over the images that have that label (-1 = missing); ``biome_weight``
    (per biome, mean 1 over the training images: ``train._biome_weights``) weighs each image by its biome.

    A batch with no labels for a head contributes a zero that still belongs to
    the graph, so DDP sees every parameter used.
    """
    has_b, has_m = biome >= 0, month >= 0
    zero_b, zero_m = out["biome"].sum() * 0, out["month"].sum() * 0
    if has_b.any():
        loss_b = F.cross_entropy(out["biome"][has_b], biome[has_b], reduction="none")
        if biome_weight is not None:
            # A mean over the images, each weighted by its biome: not over the batch's weights, which
            # would make the loss depend on how a batch is cut (several processes would not match one).
            loss_b = loss_b * biome_weight[biome[has_b]]
        loss_b = loss_b.mean()
    else:
        loss_b = zero_b
    if has_m.any():
        logits = out["month"][has_m]
        target = circular_soft_targets(month[has_m], logits.shape[1], month_sigma)
        loss_m = -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()
    else:
        loss_m = zero_m
    return loss_b, loss_m


def distill_loss(out: dict, target: dict, month_weight: float) -> torch.Tensor:
    """KL divergence from the teacher's answers (``target``: its logits) to the model's, biome and month
    heads weighted as the labels' losses are."""
    def kl(head):
        return F.kl_div(F.log_softmax(out[head].float(), dim=1), F.log_softmax(target[head].float(), dim=1),
                        reduction="batchmean", log_target=True)
    return kl("biome") + month_weight * kl("month")


# ---------------------------------------------------------------- one epoch

def train_one_epoch(model, loader, optimizer, scheduler, device, cfg: TrainConfig, epoch: int,
                    biome_weight=None, scaler=None, show=True, frozen: bool = False, teacher=None,
                    camera=None, norm=None) -> dict:
    """``teacher`` (a frozen model), ``camera`` (a ``model.camera.Camera``) and ``norm`` (mean, std): the
    teacher answers on each batch as it is, the model on the same batch through the camera, and learns
    both the labels and the teacher's answers (``--teacher``, ``--distill``)."""
    model.train()
    if frozen or cfg.freeze_bn:
        # The batch-norm statistics stay as they were: the heads learn alone (``frozen``), or the
        # starting weights' statistics are kept (--freeze-bn; the scales and shifts still learn).
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
    use_amp = scaler is not None
    totals = {"loss": 0.0, "biome_loss": 0.0, "month_loss": 0.0}
    if teacher is not None:
        totals["distill_loss"] = 0.0
    seen, wait, start = 0, 0.0, time.perf_counter()
    bar = tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not show)
    tick = time.perf_counter()
    for images, biome, month in loader:
        wait += time.perf_counter() - tick
        images = images.to(device, non_blocking=True)
        if use_amp:
            images = images.contiguous(memory_format=torch.channels_last)
        biome, month = biome.to(device), month.to(device)
        losses = {}
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            if teacher is not None:
                with torch.no_grad():
                    target = teacher(images)
                if camera is not None:
                    images = camera.batch(images, *norm)
            out = model(images)
            loss_b, loss_m = masked_losses(out, biome, month, cfg.month_sigma, biome_weight)
            loss = loss_b + cfg.month_weight * loss_m
            if teacher is not None:
                losses["distill_loss"] = distill_loss(out, target, cfg.month_weight)
                loss = loss + cfg.distill * losses["distill_loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        if use_amp:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        n = images.shape[0]
        seen += n
        for k, v in (("loss", loss), ("biome_loss", loss_b), ("month_loss", loss_m), *losses.items()):
            totals[k] += v.item() * n
        bar.set_postfix(loss=f"{totals['loss'] / seen:.3f}")
        bar.update()
        tick = time.perf_counter()
    bar.close()
    seconds = time.perf_counter() - start
    stats = {f"train_{k}": v / max(seen, 1) for k, v in totals.items()}
    stats.update(seconds=seconds, images_per_s=seen / max(seconds, 1e-9),
                 data_wait_share=wait / max(seconds, 1e-9))
    return stats
