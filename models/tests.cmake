# The model checks (models/check.sh, docs/model.md), one ctest entry per check: each model as
# written must verify ("model.NAME"), each deliberately broken variant must be refuted
# ("model.NAME_broken_BUG_fails") and each witness run must be found ("model.NAME_witness_W_reached").
# The list comes from the models themselves (check.sh --list reads their "BUG"/"WITNESS" lines),
# so a variant added to a model is checked without an edit here. check.sh fails, never skips,
# when spin is missing (`tools/hv setup` installs it).
set(HV_MODELS_DIR ${CMAKE_CURRENT_LIST_DIR})
file(GLOB HV_MODEL_FILES CONFIGURE_DEPENDS ${HV_MODELS_DIR}/*.pml)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${HV_MODELS_DIR}/check.sh ${HV_MODEL_FILES})
execute_process(COMMAND bash ${HV_MODELS_DIR}/check.sh --list
                OUTPUT_VARIABLE hv_model_checks RESULT_VARIABLE hv_model_list_rc)
if(NOT hv_model_list_rc EQUAL 0 OR hv_model_checks STREQUAL "")
  message(FATAL_ERROR "models/check.sh --list failed (${hv_model_list_rc})")
endif()
string(REPLACE "\n" ";" hv_model_checks "${hv_model_checks}")
foreach(line IN LISTS hv_model_checks)
  if(line STREQUAL "")
    continue()
  endif()
  string(REPLACE " " ";" fields "${line}")
  list(GET fields 0 name)
  list(SUBLIST fields 1 -1 args)
  add_test(NAME ${name} COMMAND bash ${HV_MODELS_DIR}/check.sh ${args})
  # pan is single-threaded; the biggest model takes ~10 s of CPU alone, allow for a loaded machine.
  set_tests_properties(${name} PROPERTIES LABELS model TIMEOUT 600)
endforeach()
