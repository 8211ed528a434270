/* placeholder until the module lands */
typedef int sp_data_placeholder_t;
