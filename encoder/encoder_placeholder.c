/* placeholder until the module lands */
typedef int sp_encoder_placeholder_t;
