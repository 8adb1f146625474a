# The include layering, checked by ctest (static.layering): cmake -DROOT=<source dir> -P this.
#
#   base/  compiler facilities only: includes nothing of the project;
#   mmu/   the portable MMU: base/ and mmu/ only (never arch/ or hv/);
#   arch/  the x86 machine: base/ and arch/ only (never mmu/ or hv/).
# hv/ sits on top and may include all three. A violation is printed with its file and line,
# and the check fails.
cmake_minimum_required(VERSION 3.25)
if(NOT ROOT)
  message(FATAL_ERROR "usage: cmake -DROOT=<source dir> -P check_layering.cmake")
endif()

# Each layer, and what its includes may name (a regular expression on the include path).
set(allowed_base "^base/")
set(allowed_mmu "^(base|mmu)/")
set(allowed_arch "^(base|arch)/")
set(violations 0)
set(files_checked 0)
foreach(layer base mmu arch)
  set(allowed "${allowed_${layer}}")
  file(GLOB_RECURSE sources "${ROOT}/${layer}/*.h" "${ROOT}/${layer}/*.cpp")
  foreach(f IN LISTS sources)
    math(EXPR files_checked "${files_checked} + 1")
    file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
    foreach(line IN LISTS lines)
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\".*" "\\1" inc "${line}")
      if(NOT inc MATCHES "${allowed}")
        file(RELATIVE_PATH rel "${ROOT}" "${f}")
        message("layering: ${rel} (${layer}/) includes \"${inc}\"; ${layer}/ may include only ${allowed}")
        math(EXPR violations "${violations} + 1")
      endif()
    endforeach()
  endforeach()
endforeach()
if(violations)
  message(FATAL_ERROR "layering: ${violations} include(s) across the layers")
endif()
message("layering: ${files_checked} files of base/, mmu/ and arch/ include only what their layer may")
