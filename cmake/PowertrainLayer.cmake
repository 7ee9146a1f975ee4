# powertrain_layer(NAME DEPS ...): one static library per architectural layer,
# built from every .cpp in the calling folder.
function(powertrain_layer name)
  cmake_parse_arguments(L "" "" "DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  set(target powertrain_${name})
  if(srcs)
    add_library(${target} STATIC ${srcs})
    target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/include
                                         PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    target_link_libraries(${target} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${PROJECT_SOURCE_DIR}/include)
    target_link_libraries(${target} INTERFACE ${L_DEPS})
  endif()
endfunction()

# powertrain_layer_tests(NAME DEPS ...): one GoogleTest binary per layer from
# every .cpp in the calling folder, registered with ctest. CLI: the suite runs the
# powertrain executable (its path in $POWERTRAIN_BINARY), which hands the
# commands that train to powertrain-train beside it. TORCH: the suite includes
# LibTorch and shares its precompiled header.
function(powertrain_layer_tests name)
  cmake_parse_arguments(L "CLI;TORCH" "" "DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  if(NOT srcs)
    return()
  endif()
  set(target powertrain_${name}_tests)
  add_executable(${target} ${srcs})
  target_link_libraries(${target} PRIVATE ${L_DEPS} powertrain_test_support GTest::gtest_main GTest::gmock)
  target_include_directories(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  if(L_TORCH)
    powertrain_use_torch_pch(${target})
  endif()
  # The source tree and, for end-to-end suites (CLI), the powertrain executable
  # reach the tests as compile definitions: gtest_discover_tests cannot pass
  # more than one ENVIRONMENT entry reliably.
  target_compile_definitions(${target} PRIVATE POWERTRAIN_TEST_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                                               POWERTRAIN_TEST_PYTHON="${POWERTRAIN_PYTHON}")
  if(L_CLI)
    target_compile_definitions(${target} PRIVATE POWERTRAIN_TEST_BINARY="$<TARGET_FILE:powertrain>")
    add_dependencies(${target} powertrain powertrain-train)
  endif()
  gtest_discover_tests(${target} DISCOVERY_TIMEOUT 120)
endfunction()

# LibTorch's headers cost about half a minute per translation unit. One
# precompiled <torch/torch.h>, built once and reused by every target that
# includes it, keeps the build inside the CI budget on two cores.
option(POWERTRAIN_TORCH_PCH "Precompile LibTorch's headers once for all targets" ON)
function(powertrain_use_torch_pch target)
  if(NOT POWERTRAIN_TORCH_PCH)
    return()
  endif()
  if(NOT TARGET powertrain_torch_pch)
    # Written only when its text changes, so a re-run of CMake leaves the
    # anchor's time alone and nothing that depends on it is rebuilt.
    file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/torch_pch.cpp
         CONTENT "// anchor of the shared LibTorch precompiled header\n")
    add_library(powertrain_torch_pch STATIC ${PROJECT_BINARY_DIR}/torch_pch.cpp)
    target_link_libraries(powertrain_torch_pch PUBLIC ${TORCH_LIBRARIES})
    target_precompile_headers(powertrain_torch_pch PRIVATE <torch/torch.h>)
  endif()
  get_target_property(type ${target} TYPE)
  if(NOT type STREQUAL "INTERFACE_LIBRARY")
    target_precompile_headers(${target} REUSE_FROM powertrain_torch_pch)
  endif()
endfunction()
