# The house's one rule, checked when CMake configures: a library links only libraries of a lower
# layer (docs/architecture.md, "Layers"). A link that runs up the house fails the configure step,
# naming both libraries and their layers. tests/architecture/check_includes.py applies the same
# table to every #include, so an arrow that a header alone carries is caught too.
#
# Layer numbers: a library may link any library of a strictly lower number (same number: no).
set(SGSYNC_LAYERS
  sgsync_common=0
  sgsync_proto=0
  sgsync_misp=1
  sgsync_sqlite=1
  sgsync_httpd=1
  sgsync_policy=2
  sgsync_state=2
  sgsync_connector=2
  sgsync_mispsim=3
  sgsync_engine=3
  sgsync_cli_render=3
  sgsync_config=4
  sgsync_onboarding=5
  sgsync_daemon=6
)

# Every library target defined under `dir`, its subdirectories included.
function(sgsync_collect_libraries dir out)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  set(found "")
  foreach(target IN LISTS targets)
    get_target_property(type ${target} TYPE)
    if(type MATCHES "_LIBRARY$" AND target MATCHES "^sgsync_")
      list(APPEND found ${target})
    endif()
  endforeach()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    sgsync_collect_libraries(${sub} sub_found)
    list(APPEND found ${sub_found})
  endforeach()
  set(${out} ${found} PARENT_SCOPE)
endfunction()

function(sgsync_check_layers)
  foreach(entry IN LISTS SGSYNC_LAYERS)
    string(REPLACE "=" ";" pair "${entry}")
    list(GET pair 0 lib)
    list(GET pair 1 layer)
    set(layer_of_${lib} ${layer})
  endforeach()
  sgsync_collect_libraries(${CMAKE_SOURCE_DIR} all_libraries)
  set(problems "")
  foreach(entry IN LISTS SGSYNC_LAYERS)
    string(REPLACE "=" ";" pair "${entry}")
    list(GET pair 0 lib)
    list(GET pair 1 layer)
    if(NOT TARGET ${lib})
      continue()
    endif()
    get_target_property(deps ${lib} LINK_LIBRARIES)
    if(NOT deps)
      continue()
    endif()
    foreach(dep IN LISTS deps)
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" dep "${dep}")
      if(NOT dep MATCHES "^sgsync_")
        continue()
      endif()
      if(NOT DEFINED layer_of_${dep})
        list(APPEND problems "${lib} links ${dep}, which has no layer in cmake/layers.cmake")
      elseif(NOT layer_of_${dep} LESS layer)
        list(APPEND problems
             "${lib} (layer ${layer}) links ${dep} (layer ${layer_of_${dep}}): a library links only lower layers")
      endif()
    endforeach()
  endforeach()
  # Every sgsync library has a layer, so a new one cannot slip past the rule (the tests' own
  # support library sits above everything and is not checked).
  foreach(target IN LISTS all_libraries)
    if(NOT DEFINED layer_of_${target} AND NOT target STREQUAL "sgsync_test_support")
      list(APPEND problems "${target} has no layer in cmake/layers.cmake")
    endif()
  endforeach()
  if(problems)
    list(JOIN problems "\n  " text)
    message(FATAL_ERROR "The layers of the house are broken (cmake/layers.cmake):\n  ${text}")
  endif()
endfunction()
