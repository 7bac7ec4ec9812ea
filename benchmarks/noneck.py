import sys, torch, torch.nn as nn
sys.argv = ["x"]
from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import Trainer
from ferlab.data.samplers import epoch_order
cfg = TrainConfig.from_yaml("recipes/dmue/ferplus.yaml", "cpu")
cfg.val_split = cfg.test_split = None; cfg.progress = False; cfg.noise, cfg.noise_rate = "symmetric", 0.3
cfg.method_args.update(sp_weight=0.0, soft_weight=0.0, dropout=0.0)
tr = Trainer(cfg); m = tr.method
mode = sys.argv_mode if hasattr(sys, "argv_mode") else None
m.necks = nn.ModuleList([nn.Identity()])
m.aux_classifiers = nn.ModuleList(nn.Linear(512, 6) for _ in range(7))
opt = torch.optim.Adam([{"params": [p for n, p in m.named_parameters() if not n.startswith(("aux_classifiers", "classifier", "confidence"))], "lr": 2e-4},
                        {"params": list(m.aux_classifiers.parameters()), "lr": 2e-4}], weight_decay=1e-4)
m.train(); m.on_epoch_start(-1000)
order = epoch_order(len(tr.train_set), 0, 0, 0, 1, "stratified", tr.train_set.labels, 32)
acc = 0
for step in range(200):
    out = m.training_step(tr.train_set.get_batch(order[step*32:(step+1)*32]))
    opt.zero_grad(); out["loss"].backward(); opt.step(); acc += float(out["aux_ce"]) / 50
    if step % 50 == 49: print("step", step + 1, "aux_ce", round(acc, 4), flush=True); acc = 0
