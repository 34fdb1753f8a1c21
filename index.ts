// The dynact library: load a checkpoint, generate, score perplexity and multiple-choice tasks, and swap the MLP's
// neuron gate, the attention's head gate and TEAL's input sparsity. The CLI is a thin layer over exactly these
// functions.
export { DynactError, MemoryLimitError, ShapeError } from "./engine/errors";
export { FormatError } from "./models/formats/format-error";

export { ContextLengthError, loadModel, type LoadedModel, type LoadOptions } from "./models/load";
export type { LlamaModel, FfnOptions } from "./models/llama";
export type { ActivationName, LlamaConfig } from "./models/config";
export type { Tokenizer } from "./models/tokenizer/tokenizer";
export { readLlama2cTokenizer } from "./models/tokenizer/sentencepiece-bpe";
export { readTokenizerJson } from "./models/tokenizer/tokenizer-json";
export { cachedHubPath, downloadFromHub, type HubOptions } from "./models/hub/download";
export { HubError } from "./models/hub/hub-error";

export { generate, type GenerateOptions, type GenerateResult, type StopReason } from "./models/generate";
export { Sampler, type SamplerOptions } from "./models/sampler";

export { perplexity, type PerplexityOptions, type PerplexityResult } from "./eval/perplexity";
export { compareModels, quantReport, type CandidateComparison, type Comparison, type QuantReport, type QuantReportOptions } from "./eval/quant-report";
export { readTextTokens } from "./eval/text";
export { readTask, type McItem, type McTask } from "./eval/tasks";
export { evaluate, type EvaluateOptions, type ItemResult, type TaskResult } from "./eval/multiple-choice";

export { calibrate, type CalibrateOptions, type CalibratedSpec } from "./eval/calibrate";
export { buildHeadGate, buildNeuronGate, buildTeal, gateBytes, headGateBytes, type GateFactoryOptions } from "./eval/gate-factory";
export type { HeadGate, KvPolicy } from "./models/gates/head-gate";
export type { TealHook } from "./models/teal";
export { fitPredictors, type FitOptions } from "./eval/predictor/fit";
export { fitHeadPredictors, type FitHeadsOptions } from "./eval/predictor/fit-heads";
export { readPredictor, writePredictor, type Predictor, type PredictorHeader } from "./models/gates/predictor-file";
export { parseGateSpec, type GateSpec } from "./models/gates/spec";
export { readCalibration, writeCalibration, type Calibration } from "./models/gates/calibration";
export type { NeuronGate } from "./models/gates/neuron-gate";
export type { FfnMode } from "./models/ffn";
export type { FfnStatsSummary } from "./models/ffn-stats";
