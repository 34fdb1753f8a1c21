import { runTraining, TRAIN_HELP } from "../training";

export const help = `dynact relufy -m MODEL [-t TOKENIZER] -d TEXT -o OUT [--steps N] [--lr LR] [--batch B] [--seq T] [--l1 λ]
              [--l1-warmup N] [--sparsity F] [--stage2] [--distill α] [--distill-temp τ] [--synthetic N]
              [--seed S] [--eval-every K] [--resume CKPT] [--format llama2c|gguf] [--json]

Make a ReLU counterpart of a SiLU LLaMA ("ReLU Strikes Back", ProSparse): replace the MLP activation by ReLU,
optionally add ReLU after the norms (--stage2) and an L1 penalty on the MLP activations (--l1, ramped up over
--l1-warmup steps, optionally steered per layer toward a sparsity target), then fine-tune every weight on the
text with next-token cross-entropy (AdamW, warm-up + cosine learning rate, gradient clipping), optionally
distilled from the input model (--distill) and on text the input model writes (--synthetic). Progress (loss,
sparsity, tokens/s) goes to stderr.

${TRAIN_HELP}
      --stage2            also ReLU on the outputs of the attention and MLP norms (recorded in the output)`;

export async function run(argv: string[]): Promise<void> {
  await runTraining(argv, true, help);
}
