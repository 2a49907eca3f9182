"""Making a model smaller and faster: number formats, quantization, pruning, sharing, distillation."""
