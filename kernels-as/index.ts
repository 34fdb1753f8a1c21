// The one wasm module: every kernel family, re-exported. Kernels take byte offsets into the imported memory
// and never allocate.
export { matvec_f32 } from "./matvec";
export { matvec_f16, matvec_bf16, matvec_rows_f16, matvec_rows_bf16 } from "./matvec_half";
export { quantize_q8_0, quantize_act_q8_0, quantize_act_q4_0, matvec_q8_0, matvec_q4_0 } from "./matvec_quant";
export { gemm_f32, gemm_f16, gemm_bf16, gemm_q8_0, gemm_q4_0 } from "./gemm";
export { sum_f32, mul_add_f32 } from "./sum";
export { rmsnorm_f32 } from "./norm";
export { rope_f32 } from "./rope";
export { softmax_f32 } from "./softmax";
export { silu_f32, relu_f32, relu2_f32, gelu_f32, abs_mul_f32, mul_f32, add_f32, sparsify_f32 } from "./elementwise";
export { matvec_rows_f32, scatter_axpy_f32, gather_f32, scatter_f32, scatter_heads_f32 } from "./sparse";
export { matvec_rows_q8_0, matvec_rows_q4_0, scatter_axpy_q8_0, scatter_axpy_f16 } from "./sparse_quant";
export { compact_nonzero_f32 } from "./sparse_input";
export { select_threshold_f32, kth_largest_f32, select_topk_f32 } from "./select";
export { argmax_f32 } from "./argmax";
export { attention_f32 } from "./attention";
export { attention_train_fwd_f32, attention_train_bwd_f32 } from "./train_attention";

// First byte past the module's static data (Mathf's lookup tables): the engine's arena starts above it.
export function heap_base(): usize {
  return __heap_base;
}
