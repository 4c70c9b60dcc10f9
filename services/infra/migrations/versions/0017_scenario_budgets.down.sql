DROP TABLE scenario_budgets;
