/* placeholder until the module lands */
typedef int sp_linear_eval_placeholder_t;
