# CUDA must be enabled at file scope of the top directory, where the library target lives; the
# kernels default to sm_90 (Hopper) machine code plus PTX for newer chips.
if(NOT ST_ENABLE_CUDA STREQUAL "OFF" AND EXISTS ${PROJECT_SOURCE_DIR}/src/backend/cuda/CMakeLists.txt)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    # CMake 3.25 does not yet know that nvcc 12 and later take -std=c++20.
    if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
      list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
      set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
    endif()
  endif()
endif()

# Optional GPU backends. Each lives in src/backend/<name>/ with its own CMakeLists.txt that adds its
# sources to the core target; AUTO turns a backend on when its toolchain is found.
function(st_add_backends target)
  set(enabled cpu)

  if(NOT ST_ENABLE_CUDA STREQUAL "OFF")
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER AND EXISTS ${PROJECT_SOURCE_DIR}/src/backend/cuda/CMakeLists.txt)
      add_subdirectory(${PROJECT_SOURCE_DIR}/src/backend/cuda ${PROJECT_BINARY_DIR}/backend-cuda)
      list(APPEND enabled cuda)
    elseif(ST_ENABLE_CUDA STREQUAL "ON")
      message(FATAL_ERROR "ST_ENABLE_CUDA=ON but no CUDA toolchain or CUDA backend sources were found")
    endif()
  endif()

  if(NOT ST_ENABLE_VULKAN STREQUAL "OFF")
    find_package(Vulkan QUIET COMPONENTS glslc)
    if(Vulkan_FOUND AND Vulkan_glslc_FOUND AND EXISTS ${PROJECT_SOURCE_DIR}/src/backend/vulkan/CMakeLists.txt)
      add_subdirectory(${PROJECT_SOURCE_DIR}/src/backend/vulkan ${PROJECT_BINARY_DIR}/backend-vulkan)
      list(APPEND enabled vulkan)
    elseif(ST_ENABLE_VULKAN STREQUAL "ON")
      message(FATAL_ERROR "ST_ENABLE_VULKAN=ON but Vulkan, glslc or the Vulkan backend sources were not found")
    endif()
  endif()

  message(STATUS "SpiralTorch backends: ${enabled}")
endfunction()
