# Every shader variant the backend dispatches, by name: <kernel>_<dtype...>. Included by the
# backend's CMakeLists.txt, which defines st_vk_shader().
set(st_vk_all_dtypes f32 f64 f16 bf16 i32 i64 bool)
set(st_vk_float_dtypes f32 f64 f16 bf16)

foreach(dst IN LISTS st_vk_all_dtypes)
  foreach(src IN LISTS st_vk_all_dtypes)
    st_vk_shader(copy_${dst}_${src} copy.comp DST=${dst} SRC=${src})
  endforeach()
  st_vk_shader(unary_${dst} unary.comp T=${dst})
  st_vk_shader(binary_${dst} binary.comp T=${dst} -DUSE_BOOL=1)
  st_vk_shader(where_${dst} where.comp T=${dst} -DUSE_BOOL=1)
  st_vk_shader(arg_reduce_${dst} arg_reduce.comp T=${dst})
endforeach()

# Dense same-dtype copies of any dtype, 16 bytes per access; f32 dense elementwise ops, softmax
# rows and layer_norm rows through vec4.
st_vk_shader(copy_vec4 copy_vec4.comp)
st_vk_shader(transpose_32 transpose.comp)
st_vk_shader(unary_vec4_f32 unary.comp T=f32 -DVEC4=1)
st_vk_shader(binary_vec4_f32 binary.comp T=f32 -DUSE_BOOL=1 -DVEC4=1)
st_vk_shader(layer_norm_vec4_f32 layer_norm.comp T=f32 -DUSE_F32=1 -DVEC4=1)
st_vk_shader(layer_norm_backward_vec4_f32 layer_norm.comp T=f32 -DUSE_F32=1 -DVEC4=1 -DBACKWARD=1)
st_vk_shader(softmax_vec4_f32 softmax.comp T=f32 -DVEC4=1)
st_vk_shader(softmax_backward_vec4_f32 softmax.comp T=f32 -DVEC4=1 -DBACKWARD=1)
# The same rows reduced through subgroup operations, where the device has them.
st_vk_shader(layer_norm_vec4_sg_f32 layer_norm.comp T=f32 -DUSE_F32=1 -DVEC4=1 -DUSE_SUBGROUP=1)
st_vk_shader(layer_norm_backward_vec4_sg_f32 layer_norm.comp T=f32 -DUSE_F32=1 -DVEC4=1 -DBACKWARD=1
             -DUSE_SUBGROUP=1)
st_vk_shader(softmax_vec4_sg_f32 softmax.comp T=f32 -DVEC4=1 -DUSE_SUBGROUP=1)
st_vk_shader(softmax_backward_vec4_sg_f32 softmax.comp T=f32 -DVEC4=1 -DBACKWARD=1 -DUSE_SUBGROUP=1)
# f32 GEMM with 16-byte accesses: 128 x 128 tiles (8 x 8 per invocation) and 64 x 64 (4 x 4).
st_vk_shader(matmul_vec4_large_f32 matmul_vec4.comp -DBM=128 -DBN=128 -DBK=8)
st_vk_shader(matmul_vec4_medium_f32 matmul_vec4.comp -DBM=64 -DBN=64 -DBK=16)

# reduce_<in>_<out>: the output dtypes the front-end asks for (integer sums in int64), and the
# accumulation dtype of a first pass (f32 for 16-bit floats).
set(st_vk_reduce_pairs f32:f32 f32:f16 f32:bf16 f16:f16 f16:f32 bf16:bf16 bf16:f32 f64:f64
    i32:i32 i32:i64 i64:i64 i64:i32 i64:bool bool:bool bool:i64)
foreach(pair IN LISTS st_vk_reduce_pairs)
  string(REPLACE ":" ";" pair ${pair})
  list(GET pair 0 in)
  list(GET pair 1 out)
  st_vk_shader(reduce_${in}_${out} reduce.comp T=${in} OUT=${out})
endforeach()

foreach(t IN LISTS st_vk_float_dtypes)
  st_vk_shader(random_${t} random.comp T=${t})
  st_vk_shader(softmax_${t} softmax.comp T=${t})
  st_vk_shader(softmax_backward_${t} softmax.comp T=${t} -DBACKWARD=1)
  st_vk_shader(layer_norm_${t} layer_norm.comp T=${t} -DUSE_F32=1)
  st_vk_shader(layer_norm_backward_${t} layer_norm.comp T=${t} -DUSE_F32=1 -DBACKWARD=1)
  st_vk_shader(layer_norm_weight_grads_${t} layer_norm.comp T=${t} -DUSE_F32=1 -DWEIGHT_GRADS=1)
  st_vk_shader(layer_norm_weight_grads_finish_${t} layer_norm.comp T=${t} -DUSE_F32=1
               -DWEIGHT_GRADS=1 -DFINISH=1)
  st_vk_shader(cross_entropy_${t} cross_entropy.comp T=${t} L=${t} -DUSE_F32=1)
  st_vk_shader(cross_entropy_backward_${t} cross_entropy.comp T=${t} L=${t} -DUSE_F32=1 -DBACKWARD=1)
  st_vk_shader(embedding_${t} embedding.comp T=${t})
  st_vk_shader(embedding_backward_${t} embedding.comp T=${t} -DBACKWARD=1)
  st_vk_shader(sgd_${t} optim.comp T=${t})
  st_vk_shader(adam_${t} optim.comp T=${t} -DADAM=1)
  st_vk_shader(sum_of_squares_${t}_f32 sum_of_squares.comp T=${t} ACC=f32)
  st_vk_shader(sum_of_squares_${t}_f64 sum_of_squares.comp T=${t} ACC=f64)
  # Tiles: 128 x 128 with 8 x 8 per invocation for large products, 32 x 32 with 2 x 2 for small.
  st_vk_shader(matmul_large_${t} matmul.comp T=${t} -DBM=128 -DBN=128 -DBK=8 -DTM=8 -DTN=8)
  st_vk_shader(matmul_small_${t} matmul.comp T=${t} -DBM=32 -DBN=32 -DBK=16 -DTM=2 -DTN=2)
endforeach()

# Cross entropy on f16/bf16 logits with an f32 loss (autocast).
foreach(t f16 bf16)
  st_vk_shader(cross_entropy_${t}_f32 cross_entropy.comp T=${t} L=f32)
  st_vk_shader(cross_entropy_backward_${t}_f32 cross_entropy.comp T=${t} L=f32 -DBACKWARD=1)
endforeach()
