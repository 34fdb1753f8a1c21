import { runTraining, TRAIN_HELP } from "../training";

export const help = `dynact train -m MODEL [-t TOKENIZER] -d TEXT -o OUT [--steps N] [--lr LR] [--batch B] [--seq T] [--l1 λ]
             [--distill α] [--synthetic N] [--seed S] [--eval-every K] [--resume CKPT] [--format llama2c|gguf] [--json]

Continue training a checkpoint on a text, its activation unchanged (the loop of dynact relufy without the
swap): next-token cross-entropy, AdamW, warm-up + cosine learning rate, gradient clipping.

${TRAIN_HELP}`;

export async function run(argv: string[]): Promise<void> {
  await runTraining(argv, false, help);
}
