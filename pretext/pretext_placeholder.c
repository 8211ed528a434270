/* placeholder until the module lands */
typedef int sp_pretext_placeholder_t;
